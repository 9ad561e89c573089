import type { FastifyInstance } from 'fastify';
import type { ApolloServer } from '@apollo/server';
import type { MikroORM } from '@mikro-orm/postgresql';
import type { Config } from './config.js';
import type { Context } from './context.js';
import type { StatementTotals } from './core/sql-stats.js';
import { registerMetricsRoute } from './core/metrics.js';
import { registerHealthRoutes } from './core/health.js';
import type { HotDocumentStore } from './core/document-store.js';
import { buildId } from './core/build-id.js';
import type { CacheService, WriteChange } from './core/cache/index.js';
import { createReconciler, type Reconciler } from './modules/reconciliation/reconciler.js';
import type { Realtime } from './modules/realtime/realtime.js';
import { registerStripeWebhook } from './modules/payment/webhook.route.js';
import type { ResponseCache } from './modules/response-cache/response-cache.js';
import type { Limits } from './modules/limits/limits.js';
import { openDatabase } from './app/database.js';
import { createHttpServer } from './app/http.js';
import { createServices } from './app/services.js';
import { createGraphql } from './app/graphql.js';

export interface App {
  fastify: FastifyInstance;
  apollo: ApolloServer<Context>;
  orm: MikroORM;
  /** Every statement the ORM logged since start, attributed to a request or not. */
  sqlTotals: StatementTotals;
  /**
   * The shared cache store: query results when CACHE_ENABLED, and always the viewer's current state
   * and the invalidations of writes (memory, or Redis with REDIS_URL).
   */
  cache: CacheService;
  /** Settles payments whose webhook never came; null without Stripe. Runs every RECONCILE_INTERVAL_SECONDS. */
  reconciler: Reconciler | null;
  /** Subscriptions over graphql-ws on /graphql, and the payment event bus. */
  realtime: Realtime;
  /** How many documents the jit executor holds compiled, and counts runs of; null with graphql-js. */
  executorSizes: { compiled: () => number; counted: () => number } | null;
  /** Parsed and validated documents Apollo keeps (those seen twice). */
  documentStore: HotDocumentStore;
  /** Whole responses of queries (RESPONSE_CACHE_ENABLED); null when off. */
  responseCache: ResponseCache | null;
  /** Cost budgets per client (RATE_LIMIT_ENABLED); null when off. */
  limits: Limits | null;
  /** The build this instance runs: its cache entries and responses are keyed by it. */
  build: string;
  /** Calls `listener` when the instance must stop (its single-instance lease was taken over). */
  onFatal(listener: (reason: string) => void): void;
  /** Counts a rejection or exception that reached the process (main.ts's fault policy), for /metrics. */
  noteProcessFault(kind: 'unhandled_rejection' | 'uncaught_exception'): void;
  /** From now on /readyz answers 503 (draining), while requests are still served. */
  beginDrain(): void;
  /** Stops the HTTP server (draining in-flight operations) and closes the database pool. */
  close(): Promise<void>;
}

export interface AppOptions {
  /** Extra resolver classes (tests only: e.g. a deliberately naive one). */
  extraResolvers?: Function[];
  /** Where log lines go instead of stdout (tests read them). */
  logStream?: { write(line: string): void };
  /** The build id cache entries are keyed by; default: the hash of the running code (core/build-id.ts). */
  buildId?: string;
}

/**
 * Builds the whole server, in the order its parts depend on each other (each step in src/app/): the
 * database, the HTTP server, the services every request uses, GraphQL (schema, limits, Apollo, the
 * route, subscriptions), then the routes around it and the background reconciler. It never listens:
 * `main.ts` does, and tests drive it with `fastify.inject`.
 */
export async function createApp(config: Config, options: AppOptions = {}): Promise<App> {
  if (!config.databaseUrl) throw new Error('createApp needs config.databaseUrl (main.ts starts an embedded PostgreSQL when it is unset)');
  if (!config.jwtSecret) throw new Error('createApp needs config.jwtSecret');
  // Listeners of faults this instance cannot serve through (main.ts drains and exits 1).
  const fatalListeners: ((reason: string) => void)[] = [];
  const db = await openDatabase(config, (reason) => fatalListeners.forEach((listener) => listener(reason)));
  const fastify = await createHttpServer(config, options);
  const services = await createServices(config, db, fastify.log, options.buildId ?? buildId());
  const graphql = await createGraphql(config, fastify, db, services, options);
  const { orm, totals, lease } = db;
  const { cache, routing, stripe, metrics, budgets, build } = services;
  const { apollo, realtime } = graphql;

  let draining = false;
  registerHealthRoutes(fastify, { orm, cache, build, isDraining: () => draining, replicas: routing ? () => routing.status() : null, limits: () => budgets.status() });
  registerMetricsRoute(fastify, metrics.registry, config.metrics);
  const written = (change: WriteChange) => cache.write(change);
  await registerStripeWebhook(fastify, { orm, webhookSecret: config.stripe.webhookSecret, written });
  const reconciler = stripe
    ? createReconciler({
        orm,
        stripe,
        written,
        afterSeconds: config.reconcile.afterSeconds,
        batchSize: config.reconcile.batchSize,
        minCallIntervalMs: config.reconcile.minCallIntervalMs,
        expireAfterSeconds: config.reconcile.expireAfterSeconds,
        log: fastify.log,
      })
    : null;
  reconciler?.start(config.reconcile.intervalSeconds);

  return {
    fastify,
    apollo,
    orm,
    sqlTotals: totals,
    cache,
    reconciler,
    realtime,
    executorSizes: graphql.executorSizes,
    documentStore: graphql.documentStore,
    responseCache: graphql.responseCache,
    limits: graphql.limits,
    build,
    noteProcessFault: metrics.noteProcessFault,
    onFatal(listener) {
      fatalListeners.push(listener);
    },
    beginDrain() {
      draining = true;
      realtime.beginDrain();
    },
    async close() {
      // Apollo's drain (fastifyApolloDrainPlugin) closes Fastify: no new connections, in-flight
      // operations finish, then the pool. Node closes the keep-alive sockets that are idle when the
      // close starts; those busy then turn idle after their response, so keep closing idle ones.
      await reconciler?.stop();
      // Sockets first (1001: clients reconnect to another instance), then HTTP drains.
      await realtime.close();
      const reaper = setInterval(() => fastify.server.closeIdleConnections(), 50);
      try {
        await apollo.stop();
      } finally {
        clearInterval(reaper);
      }
      routing?.stop();
      await cache.close();
      await budgets.close();
      await lease?.release();
      await orm.close(true);
    },
  };
}
