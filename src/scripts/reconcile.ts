/**
 * `npm run reconcile`: one reconciliation run now (the same as the in-process job), then exit. Prints
 * the run's report as JSON. With REDIS_URL the cache entries of what it changed are invalidated for
 * every instance and the changes are published to their subscribers; with an in-process cache, a
 * running server learns of the changes at the entries' TTL (and its subscribers not at all: prefer the
 * in-process job there).
 */
import { withDatabase } from './cli.js';
import { createStripeClient } from '../modules/payment/stripe.client.js';
import { createReconciler } from '../modules/reconciliation/reconciler.js';
import { CacheService } from '../core/cache/index.js';
import { PaymentEventBus } from '../modules/realtime/payment-events.js';
import { paymentPublisher } from '../modules/realtime/realtime.js';

await withDatabase({ entry: 'reconcile' }, async (orm, config) => {
  const stripe = createStripeClient(config.stripe);
  if (!stripe) {
    console.error('reconcile needs STRIPE_SECRET_KEY');
    process.exitCode = 2;
    return;
  }
  const cache = config.cache.enabled && config.redisUrl
    ? CacheService.create({ redisUrl: config.redisUrl, namespace: config.cache.namespace, defaultTtlSeconds: config.cache.ttlSeconds, timeoutMs: config.cache.timeoutMs })
    : null;
  // With Redis, what the run changes reaches every instance's subscribers too.
  const bus = cache ? new PaymentEventBus({ redisUrl: config.redisUrl, namespace: config.cache.namespace }) : null;
  if (cache && bus) cache.onInvalidate(paymentPublisher(orm, bus));
  try {
    if (cache) await cache.ready();
    await bus?.start();
    const log = { info: () => {}, warn: (obj: object, msg: string) => console.error(msg, obj) };
    const reconciler = createReconciler({
      orm,
      stripe,
      written: async (change) => cache?.write(change),
      afterSeconds: config.reconcile.afterSeconds,
      batchSize: config.reconcile.batchSize,
      minCallIntervalMs: config.reconcile.minCallIntervalMs,
      expireAfterSeconds: config.reconcile.expireAfterSeconds,
      log,
    });
    const report = await reconciler.runOnce();
    console.log(JSON.stringify(report));
    if (report.failed > 0) process.exitCode = 1;
  } finally {
    await bus?.close();
    await cache?.close();
  }
});
