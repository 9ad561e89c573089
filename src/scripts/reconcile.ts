/**
 * `npm run reconcile`: one reconciliation run now (the same as the in-process job), then exit. Prints
 * the run's report as JSON. With REDIS_URL the cache entries of what it changed are invalidated for
 * every instance; with an in-process cache, a running server learns of the changes at the entries' TTL.
 */
import { withDatabase } from './cli.js';
import { createStripeClient } from '../modules/payment/stripe.client.js';
import { createReconciler } from '../modules/reconciliation/reconciler.js';
import { CacheService } from '../core/cache/index.js';

await withDatabase(async (orm, config) => {
  const stripe = createStripeClient(config.stripe);
  if (!stripe) {
    console.error('reconcile needs STRIPE_SECRET_KEY');
    process.exitCode = 2;
    return;
  }
  const cache = config.cache.enabled && config.redisUrl
    ? CacheService.create({ redisUrl: config.redisUrl, namespace: config.cache.namespace, defaultTtlSeconds: config.cache.ttlSeconds, timeoutMs: config.cache.timeoutMs })
    : null;
  try {
    if (cache) await cache.ready();
    const log = { info: () => {}, warn: (obj: object, msg: string) => console.error(msg, obj) };
    const reconciler = createReconciler({
      orm,
      stripe,
      invalidate: async (tags) => cache?.invalidate(tags),
      afterSeconds: config.reconcile.afterSeconds,
      batchSize: config.reconcile.batchSize,
      minCallIntervalMs: config.reconcile.minCallIntervalMs,
      log,
    });
    const report = await reconciler.runOnce();
    console.log(JSON.stringify(report));
    if (report.failed > 0) process.exitCode = 1;
  } finally {
    await cache?.close();
  }
});
