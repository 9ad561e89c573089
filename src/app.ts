import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import { ApolloServer, type ApolloServerPlugin } from '@apollo/server';
import {
  ApolloServerPluginCacheControlDisabled,
  ApolloServerPluginInlineTraceDisabled,
  ApolloServerPluginUsageReportingDisabled,
} from '@apollo/server/plugin/disabled';
import { fastifyApolloDrainPlugin, fastifyApolloHandler } from '@as-integrations/fastify';
import type { MikroORM } from '@mikro-orm/postgresql';
import type { ValidationRule } from 'graphql';
import type { Config } from './config.js';
import { buildContext, type Context } from './context.js';
import { buildServedSchema } from './schema.js';
import { registerCors } from './modules/access/cors.js';
import { OidcSignIn } from './modules/identity/oidc.js';
import { initORM } from './db/orm.js';
import type { StatementTotals } from './core/sql-stats.js';
import { formatClientError, RETRY_AFTER_SECONDS } from './core/errors.js';
import { isDatabaseUnavailable } from './core/db-errors.js';
import { armorProtection, paginationCostPlugin } from './core/security.js';
import { createMetrics, registerMetricsRoute, type PoolStats } from './core/metrics.js';
import { registerHealthRoutes } from './core/health.js';
import { statementMonitor } from './core/slow-statements.js';
import { jitGateway } from './core/jit-executor.js';
import { HotDocumentStore } from './core/document-store.js';
import { buildId } from './core/build-id.js';
import { clientRequestIdOf } from './core/request-id.js';
import { debugStatsPlugin, errorResponsePlugin, graphqlOverHttpStatusPlugin, nPlusOnePlugin, operationLogPlugin, requestPolicyPlugin } from './core/apollo-plugins.js';
import { CacheService } from './core/cache/index.js';
import { createStripeClient } from './modules/payment/stripe.client.js';
import { createPaymentService } from './modules/payment/payment.service.js';
import { createReconciler, type Reconciler } from './modules/reconciliation/reconciler.js';
import { createRealtime, type Realtime } from './modules/realtime/realtime.js';
import { registerStripeWebhook } from './modules/payment/webhook.route.js';
import { loadTrustedDocuments, registerTrustedDocuments } from './modules/documents/trusted-documents.js';
import { secretKey, TokenVerifier } from './modules/auth/auth.js';
import { ReadRouting } from './db/replicas/read-routing.js';
import { SingleInstanceLease } from './db/single-instance.js';
import { ResponseCache, type ResponseCacheResult } from './modules/response-cache/response-cache.js';
import { clientAddress, createLimits, type Limits } from './modules/limits/limits.js';
import { BudgetStore } from './modules/limits/budget-store.js';
import { PaymentAttempts } from './modules/payment/payment.attempts.js';

/** JSON lines (pino) in production and tests; pretty lines in development when pino-pretty is installed. */
function loggerOptions(config: Config, stream: AppOptions['logStream']) {
  if (config.logLevel === 'silent') return false;
  if (stream) return { level: config.logLevel, stream };
  if (config.env === 'development' && canResolve('pino-pretty')) {
    return { level: config.logLevel, transport: { target: 'pino-pretty', options: { translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname' } } };
  }
  return { level: config.logLevel };
}

function canResolve(name: string): boolean {
  try {
    createRequire(import.meta.url).resolve(name);
    return true;
  } catch {
    return false;
  }
}

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

/** Usage of the ORM's connection pool (knex/tarn), for metrics. */
function poolStats(orm: MikroORM, max: number): PoolStats | null {
  const pool = (orm.em.getConnection().getKnex().client as { pool?: { numUsed(): number; numFree(): number; numPendingAcquires(): number } }).pool;
  if (!pool) return null;
  return { used: pool.numUsed(), free: pool.numFree(), pending: pool.numPendingAcquires(), max };
}

/**
 * Builds the whole server: ORM (migrations applied), schema, Apollo and the Fastify routes. It never
 * listens: `main.ts` does, and tests drive it with `fastify.inject`.
 */
export async function createApp(config: Config, options: AppOptions = {}): Promise<App> {
  if (!config.databaseUrl) throw new Error('createApp needs config.databaseUrl (main.ts starts an embedded PostgreSQL when it is unset)');
  if (!config.jwtSecret) throw new Error('createApp needs config.jwtSecret');

  const { orm, totals } = await initORM(
    {
      databaseUrl: config.databaseUrl,
      poolMax: config.dbPoolMax,
      quiet: config.logLevel === 'silent',
      statementTimeoutMs: config.db.statementTimeoutMs,
      connectTimeoutMs: config.db.connectTimeoutMs,
      replicaUrls: config.replicas.urls,
      pooler: config.pooler,
      migrationUrl: config.db.migrationUrl,
    },
    {},
    {
      lockTimeoutMs: config.db.migrationLockTimeoutMs,
      waitMs: config.db.migrationWaitMs,
      log: (line) => config.logLevel !== 'silent' && console.error(`[paygraph] ${line}`),
    },
  );
  // Listeners of faults this instance cannot serve through (main.ts drains and exits 1).
  const fatalListeners: ((reason: string) => void)[] = [];
  const fatal = (reason: string) => fatalListeners.forEach((listener) => listener(reason));
  let lease: SingleInstanceLease | null = null;
  try {
    // SINGLE_INSTANCE=true is a promise that no other instance runs here: held as a lease, so a second one is refused.
    if (config.singleInstance) lease = await SingleInstanceLease.acquire(orm, fatal);
  } catch (err) {
    await orm.close(true);
    throw err;
  }
  const tokens = new TokenVerifier(
    secretKey(config.jwtSecret),
    undefined,
    undefined,
    config.oidc ? new OidcSignIn(config.oidc, orm, { onError: (message, err) => fastify.log.warn({ err }, message) }) : null,
  );
  const schema = await buildServedSchema({ federation: config.graphql.federation, extraResolvers: options.extraResolvers });

  const fastify = Fastify({
    logger: loggerOptions(config, options.logStream),
    bodyLimit: 100 * 1024,
    // One line per GraphQL operation is what operators want, not two per HTTP request.
    logController: new LogController({ disableRequestLogging: true }),
    // Requests that arrive while closing are still served (with Connection: close); see main.ts.
    return503OnClosing: false,
    // The request's identity is made here, whatever the client sends (see core/request-id.ts).
    genReqId: () => randomUUID(),
  });
  await registerCors(fastify, config.corsOrigins);
  fastify.addHook('onSend', async (request, reply) => {
    void reply.header('x-request-id', request.id);
    // The client's own id, recorded beside ours, goes back to it under its own name.
    const client = clientRequestIdOf(request.headers);
    if (client) void reply.header('x-client-request-id', client);
  });
  // Errors before GraphQL runs (unparsable JSON, media type, body too large...) answer in GraphQL's
  // shape with a code; anything unexpected is logged and masked.
  fastify.setErrorHandler((error: { statusCode?: number; message: string }, request, reply) => {
    const status = error.statusCode && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 500;
    if (status === 500 && isDatabaseUnavailable(error)) {
      // A route outside GraphQL (the Stripe webhook) while PostgreSQL is away: Stripe retries a 503.
      request.log.warn({ err: error }, 'database unavailable');
      return reply
        .code(503)
        .header('retry-after', String(RETRY_AFTER_SECONDS))
        .send({ errors: [{ message: 'The database is unavailable; retry shortly', extensions: { code: 'SERVICE_UNAVAILABLE', requestId: request.id } }] });
    }
    if (status === 500) {
      request.log.error({ err: error }, 'unhandled error');
      return reply.code(500).send({ errors: [{ message: 'Internal server error', extensions: { code: 'INTERNAL_SERVER_ERROR', requestId: request.id } }] });
    }
    return reply.code(status).send({ errors: [{ message: error.message, extensions: { code: 'BAD_REQUEST' } }] });
  });

  // Made below, once the cache exists (it reads the primary's WAL position after each write).
  let routing: ReadRouting | null = null;
  const build = options.buildId ?? buildId();
  const cache = CacheService.create({
    build,
    writePosition: config.replicas.urls.length > 0 ? (loggerContext) => routing!.writePosition(loggerContext) : undefined,
    redisUrl: config.redisUrl,
    namespace: config.cache.namespace,
    defaultTtlSeconds: config.cache.ttlSeconds,
    timeoutMs: config.cache.timeoutMs,
    onError: (message, error) => fastify.log.warn({ err: error }, message),
  });
  if (!(await cache.ready())) fastify.log.warn('cache store (Redis) not reachable at start; reading from PostgreSQL until it is');
  const stripe = createStripeClient(config.stripe);
  const invalidate = async (tags: string[]) => {
    await cache.invalidate(tags);
  };

  const metrics = createMetrics({
    cacheTotals: () => cache.totals,
    pool: () => poolStats(orm, config.dbPoolMax),
    statementsByTarget: () => totals.byTarget,
    build,
  });
  if (config.replicas.urls.length > 0) {
    routing = new ReadRouting(orm, cache, { maxLagMs: config.replicas.maxLagMs, checkMs: config.replicas.checkMs, registry: metrics.registry, log: fastify.log });
    await routing.start();
  }
  totals.observe = statementMonitor({ slowMs: config.db.slowStatementMs, registry: metrics.registry, log: fastify.log });
  const armor = armorProtection(config);
  // Budgets over time (cost per client, WebSocket connections and subscriptions, payment attempts),
  // in Redis when configured so every instance counts the same ones.
  const budgets = new BudgetStore({ redisUrl: config.redisUrl, namespace: config.cache.namespace, timeoutMs: config.cache.timeoutMs, log: fastify.log });
  await budgets.ready();
  const limits = config.limits.enabled ? createLimits(config.limits, { store: budgets, maxCost: config.graphql.maxCost, registry: metrics.registry, log: fastify.log }) : null;
  const addressOf = (peer: string | undefined, headers: Record<string, string | string[] | undefined>) => clientAddress(peer, headers['x-forwarded-for'], config.trustedProxies);
  const realtime = createRealtime({
    orm,
    cache,
    queryCacheEnabled: config.cache.enabled,
    tokens,
    redisUrl: config.redisUrl,
    namespace: config.cache.namespace,
    isProduction: config.isProduction,
    settings: { ...config.realtime, maxTokens: config.graphql.maxTokens, maxCost: config.graphql.maxCost },
    validationRules: armor.validationRules as ValidationRule[],
    limits,
    addressOf,
    registry: metrics.registry,
    log: fastify.log,
  });
  const plugins: ApolloServerPlugin<Context>[] = [
    fastifyApolloDrainPlugin(fastify),
    // Not used by this API, and each costs time on every field or request.
    ApolloServerPluginCacheControlDisabled(),
    ApolloServerPluginInlineTraceDisabled(),
    ApolloServerPluginUsageReportingDisabled(),
    ...(armor.plugins as ApolloServerPlugin<Context>[]),
    // With budgets on, their plugin makes the same cost check and takes the cost from the budget.
    limits ? limits.plugin() : paginationCostPlugin(config.graphql.maxCost),
    requestPolicyPlugin(),
    operationLogPlugin(fastify.log),
    metrics.plugin,
    nPlusOnePlugin(config.nPlusOne.mode, fastify.log, { exposeShapes: !config.isProduction }),
    errorResponsePlugin(),
    graphqlOverHttpStatusPlugin(),
  ];
  if (config.debugSql) plugins.push(debugStatsPlugin());
  const responseCache = config.responseCache.enabled
    ? new ResponseCache(cache, {
        ttlSeconds: config.responseCache.ttlSeconds,
        maxMemoryBytes: config.responseCache.maxMemoryMb * 1024 * 1024,
        debugExtensions: config.debugSql,
        costExtension: limits !== null,
        registry: metrics.registry,
      })
    : null;
  if (responseCache) plugins.push(responseCache.plugin());

  const documentStore = new HotDocumentStore();
  const jit = config.graphql.executor === 'jit' ? jitGateway(schema, { compileAfter: config.graphql.jitCompileAfter }) : null;
  const apollo = new ApolloServer<Context>({
    ...(jit ? { gateway: jit } : { schema }),
    plugins,
    validationRules: armor.validationRules,
    // Parsed and validated documents, kept for those that come back (see HotDocumentStore).
    documentStore: documentStore,
    // graphql-js counts tokens while parsing and stops past the limit: a 400 GRAPHQL_PARSE_FAILED
    // ("Document contains more that N tokens"), before a large document costs more than its lexing.
    parseOptions: { maxTokens: config.graphql.maxTokens },
    // Automatic persisted queries in the shared store: a hash registered through one instance works on all.
    persistedQueries: { cache: cache.keyValueStore('apq:'), ttl: config.graphql.persistedQueriesTtlSeconds },
    introspection: config.graphql.introspection,
    csrfPrevention: true,
    allowBatchedHttpRequests: config.graphql.batchMax > 0,
    includeStacktraceInErrorResponses: !config.isProduction,
    formatError: (formatted, error) => formatClientError(formatted, error, config.isProduction),
  });
  await apollo.start();

  const contextDeps = {
    orm,
    tokens,
    keepSqlTexts: config.debugSql,
    nPlusOneThreshold: config.nPlusOne.mode === 'off' ? 0 : config.nPlusOne.threshold,
    cache,
    queryCacheEnabled: config.cache.enabled,
    stripe,
    payments: createPaymentService({ attempts: new PaymentAttempts(config.paymentAttempts, budgets) }),
    events: realtime.events,
    routing,
  };
  fastify.addHook('preHandler', async (request, reply) => {
    // Apollo has no size limit for batched (array) requests: refuse large ones before any work.
    if (request.routeOptions.url === '/graphql' && Array.isArray(request.body) && request.body.length > config.graphql.batchMax) {
      const message = config.graphql.batchMax === 0 ? 'Batched requests are not accepted' : `At most ${config.graphql.batchMax} operations per batch`;
      await reply.code(400).send({ errors: [{ message, extensions: { code: 'BAD_REQUEST' } }] });
    }
  });
  const trustedDocuments = config.graphql.trustedDocuments ? await loadTrustedDocuments(config.graphql.trustedDocuments) : null;
  if (trustedDocuments) registerTrustedDocuments(fastify, { documents: trustedDocuments, adminAny: config.graphql.trustedDocumentsAdminAny, tokens });
  // A context built before Apollo runs (to find the viewer a cached response is keyed by) is used as is.
  const builtContexts = new WeakMap<object, Context>();
  const apolloHandler = fastifyApolloHandler(apollo, {
    context: async (request) => builtContexts.get(request) ?? buildContext(contextDeps, request.id, request.headers, addressOf(request.socket.remoteAddress, request.headers)),
  });
  fastify.route({
    url: '/graphql',
    method: ['GET', 'POST', 'OPTIONS'],
    handler: !responseCache
      ? apolloHandler
      : async function (this: FastifyInstance, request: Parameters<typeof apolloHandler>[0], reply: Parameters<typeof apolloHandler>[1]) {
          const bypass = () => {
            responseCache.count('bypass');
            void reply.header('x-response-cache', 'bypass');
            return apolloHandler.call(this, request, reply);
          };
          if (request.method !== 'POST') return bypass();
          let context: Context;
          try {
            context = await buildContext(contextDeps, request.id, request.headers, addressOf(request.socket.remoteAddress, request.headers));
          } catch {
            // A refused token: Apollo builds the context again and answers with the error.
            return bypass();
          }
          builtContexts.set(request, context);
          const plan = responseCache.plan(request.body, request.headers, context.viewer);
          if ('key' in plan) {
            const started = performance.now();
            const hit = await responseCache.lookup(plan.key);
            if (hit) {
              // A hit costs its client a little of its budget (a cached response still takes serving).
              const charge = limits ? await limits.chargeCachedHit(context.viewer!, context.clientAddress) : null;
              if (charge && 'refusal' in charge) {
                responseCache.count('bypass');
                return reply.code(charge.refusal.status).headers(Object.fromEntries(charge.refusal.headers)).header('content-type', 'application/json; charset=utf-8').send(charge.refusal.body);
              }
              responseCache.count('hit');
              const seconds = (performance.now() - started) / 1000;
              metrics.observeAnswered(hit.operationName, seconds);
              request.log.info(
                { requestId: request.id, clientRequestId: context.clientRequestId ?? undefined, operation: hit.operationName, viewer: context.viewer?.id ?? null, outcome: 'ok', durationMs: Math.round(seconds * 10_000) / 10, sql: { statements: 0, durationMs: 0 }, responseCache: 'hit' },
                'graphql operation',
              );
              if (charge) void reply.headers(Object.fromEntries(charge.headers));
              const body = charge ? responseCache.withExtension(hit.body, 'cost', charge.cost) : hit.body;
              return reply.code(200).header('content-type', hit.contentType).header('x-response-cache', 'hit').send(body);
            }
          }
          const body = await apolloHandler.call(this, request, reply);
          let result: ResponseCacheResult = 'bypass';
          if ('key' in plan && typeof body === 'string') {
            result = await responseCache.store(plan.key, context, body, reply.statusCode, reply.getHeader('content-type') as string | undefined);
          }
          responseCache.count(result);
          void reply.header('x-response-cache', result);
          return body;
        },
  });
  let draining = false;
  registerHealthRoutes(fastify, { orm, cache, build, isDraining: () => draining, replicas: routing ? () => routing!.status() : null, limits: () => budgets.status() });
  registerMetricsRoute(fastify, metrics.registry, config.metrics);
  await realtime.attach(fastify, schema, contextDeps, trustedDocuments);
  await registerStripeWebhook(fastify, { orm, webhookSecret: config.stripe.webhookSecret, invalidate });
  const reconciler = stripe
    ? createReconciler({
        orm,
        stripe,
        invalidate,
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
    executorSizes: jit?.sizes ?? null,
    documentStore,
    responseCache,
    limits,
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
