import type { FastifyBaseLogger } from 'fastify';
import type { MikroORM } from '@mikro-orm/postgresql';
import type { Config } from '../config.js';
import type { Database } from './database.js';
import { CacheService } from '../core/cache/index.js';
import { createMetrics, type Metrics, type PoolStats } from '../core/metrics.js';
import { statementMonitor } from '../core/slow-statements.js';
import { primaryWalPosition, ReadRouting } from '../db/replicas/read-routing.js';
import { createStripeClient, type StripeClient } from '../modules/payment/stripe.client.js';
import { secretKey, TokenVerifier } from '../modules/auth/auth.js';
import { OidcSignIn } from '../modules/identity/oidc.js';
import { BudgetStore } from '../modules/limits/budget-store.js';

/** What every request and background job of the app uses besides the database. */
export interface Services {
  /** The build this instance runs: its cache entries and responses are keyed by it. */
  build: string;
  tokens: TokenVerifier;
  cache: CacheService;
  /** Read replicas (DATABASE_REPLICA_URLS); null without any. */
  routing: ReadRouting | null;
  stripe: StripeClient | null;
  metrics: Metrics;
  /** Budgets over time (cost per client, WebSocket connections and subscriptions, payment attempts). */
  budgets: BudgetStore;
}

/** Usage of the ORM's connection pool (knex/tarn), for metrics. */
function poolStats(orm: MikroORM, max: number): PoolStats | null {
  const pool = (orm.em.getConnection().getKnex().client as { pool?: { numUsed(): number; numFree(): number; numPendingAcquires(): number } }).pool;
  if (!pool) return null;
  return { used: pool.numUsed(), free: pool.numFree(), pending: pool.numPendingAcquires(), max };
}

/**
 * Step 3, in dependency order: tokens, the shared cache and the budgets' store (Redis when
 * configured), metrics, read routing over the replicas (it keeps its marks in the cache), Stripe.
 */
export async function createServices(config: Config, db: Database, log: FastifyBaseLogger, build: string): Promise<Services> {
  const { orm, totals } = db;
  const tokens = new TokenVerifier(
    secretKey(config.jwtSecret!),
    undefined,
    undefined,
    config.oidc ? new OidcSignIn(config.oidc, orm, { onError: (message, err) => log.warn({ err }, message) }) : null,
  );
  const replicated = config.replicas.urls.length > 0;
  const cache = CacheService.create({
    build,
    // With replicas, each new tag version carries the primary's position (see src/db/replicas).
    writePosition: replicated ? (loggerContext) => primaryWalPosition(orm, loggerContext) : undefined,
    redisUrl: config.redisUrl,
    namespace: config.cache.namespace,
    defaultTtlSeconds: config.cache.ttlSeconds,
    timeoutMs: config.cache.timeoutMs,
    onError: (message, error) => log.warn({ err: error }, message),
  });
  const budgets = new BudgetStore({ redisUrl: config.redisUrl, namespace: config.cache.namespace, timeoutMs: config.cache.timeoutMs, log });
  // Both wait (bounded) for Redis at the same time: with Redis away, start-up waits once, not twice.
  const [cacheReady] = await Promise.all([cache.ready(), budgets.ready()]);
  if (!cacheReady) log.warn('cache store (Redis) not reachable at start; reading from PostgreSQL until it is');
  const metrics = createMetrics({
    cacheTotals: () => cache.totals,
    pool: () => poolStats(orm, config.dbPoolMax),
    statementsByTarget: () => totals.byTarget,
    build,
  });
  const routing = replicated ? new ReadRouting(orm, cache, { maxLagMs: config.replicas.maxLagMs, checkMs: config.replicas.checkMs, registry: metrics.registry, log }) : null;
  await routing?.start();
  totals.observe = statementMonitor({ slowMs: config.db.slowStatementMs, registry: metrics.registry, log });
  return { build, tokens, cache, routing, stripe: createStripeClient(config.stripe), metrics, budgets };
}
