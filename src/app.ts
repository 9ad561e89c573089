import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyInstance } from 'fastify';
import { ApolloServer, type ApolloServerPlugin } from '@apollo/server';
import {
  ApolloServerPluginCacheControlDisabled,
  ApolloServerPluginInlineTraceDisabled,
  ApolloServerPluginUsageReportingDisabled,
} from '@apollo/server/plugin/disabled';
import { fastifyApolloDrainPlugin, fastifyApolloHandler } from '@as-integrations/fastify';
import type { MikroORM } from '@mikro-orm/postgresql';
import type { Config } from './config.js';
import { buildContext, type Context } from './context.js';
import { buildAppSchema } from './schema.js';
import { initORM } from './db/orm.js';
import type { StatementTotals } from './core/sql-stats.js';
import { maskError } from './core/errors.js';
import { cachePolicyPlugin, debugStatsPlugin, nPlusOnePlugin, operationLogPlugin } from './core/apollo-plugins.js';
import { CacheService } from './core/cache/index.js';
import { createStripeClient } from './modules/payment/stripe.client.js';
import { registerStripeWebhook } from './modules/payment/webhook.route.js';
import { secretKey } from './modules/auth/auth.js';

const REQUEST_ID = /^[\w.:-]{1,128}$/;

export interface App {
  fastify: FastifyInstance;
  apollo: ApolloServer<Context>;
  orm: MikroORM;
  /** Every statement the ORM logged since start, attributed to a request or not. */
  sqlTotals: StatementTotals;
  /** The shared query cache; null when CACHE_ENABLED=false. */
  cache: CacheService | null;
  /** Stops the HTTP server (draining in-flight operations) and closes the database pool. */
  close(): Promise<void>;
}

export interface AppOptions {
  /** Extra resolver classes (tests only: e.g. a deliberately naive one). */
  extraResolvers?: Function[];
  /** Where log lines go instead of stdout (tests read them). */
  logStream?: { write(line: string): void };
}

/**
 * Builds the whole server: ORM (migrations applied), schema, Apollo and the Fastify routes. It never
 * listens: `main.ts` does, and tests drive it with `fastify.inject`.
 */
export async function createApp(config: Config, options: AppOptions = {}): Promise<App> {
  if (!config.databaseUrl) throw new Error('createApp needs config.databaseUrl (main.ts starts an embedded PostgreSQL when it is unset)');
  if (!config.jwtSecret) throw new Error('createApp needs config.jwtSecret');

  const { orm, totals } = await initORM({
    databaseUrl: config.databaseUrl,
    poolMax: config.dbPoolMax,
    quiet: config.logLevel === 'silent',
    statementTimeoutMs: config.db.statementTimeoutMs,
    connectTimeoutMs: config.db.connectTimeoutMs,
  });
  const jwtKey = secretKey(config.jwtSecret);
  const schema = await buildAppSchema(options.extraResolvers);

  const fastify = Fastify({
    logger: config.logLevel === 'silent' ? false : { level: config.logLevel, ...(options.logStream ? { stream: options.logStream } : {}) },
    bodyLimit: 100 * 1024,
    // One line per GraphQL operation is what operators want, not two per HTTP request.
    disableRequestLogging: true,
    // The client's x-request-id when it is a sane token, else a new UUID; echoed on every response.
    genReqId: (req) => {
      const incoming = req.headers['x-request-id'];
      return typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : randomUUID();
    },
  });
  fastify.addHook('onSend', async (request, reply) => {
    void reply.header('x-request-id', request.id);
  });

  const plugins: ApolloServerPlugin<Context>[] = [
    fastifyApolloDrainPlugin(fastify),
    // Not used by this API, and each costs time on every field or request.
    ApolloServerPluginCacheControlDisabled(),
    ApolloServerPluginInlineTraceDisabled(),
    ApolloServerPluginUsageReportingDisabled(),
    cachePolicyPlugin(),
    operationLogPlugin(fastify.log),
    nPlusOnePlugin(config.nPlusOne.mode, fastify.log),
  ];
  if (config.debugSql) plugins.push(debugStatsPlugin());

  const apollo = new ApolloServer<Context>({
    schema,
    plugins,
    introspection: !config.isProduction,
    includeStacktraceInErrorResponses: !config.isProduction,
    formatError: (formatted) => maskError(formatted, config.isProduction),
  });
  await apollo.start();

  const cache = config.cache.enabled
    ? CacheService.create({
        redisUrl: config.redisUrl,
        namespace: config.cache.namespace,
        defaultTtlSeconds: config.cache.ttlSeconds,
        timeoutMs: config.cache.timeoutMs,
        onError: (message, error) => fastify.log.warn({ err: error }, message),
      })
    : null;
  if (cache && !(await cache.ready())) fastify.log.warn('query cache store (Redis) not reachable at start; reading from PostgreSQL until it is');
  const stripe = createStripeClient(config.stripe);
  const invalidate = async (tags: string[]) => {
    await cache?.invalidate(tags);
  };
  const contextDeps = {
    orm,
    jwtKey,
    keepSqlTexts: config.debugSql,
    nPlusOneThreshold: config.nPlusOne.mode === 'off' ? 0 : config.nPlusOne.threshold,
    cache,
    stripe,
  };
  fastify.route({
    url: '/graphql',
    method: ['GET', 'POST', 'OPTIONS'],
    handler: fastifyApolloHandler(apollo, { context: async (request) => buildContext(contextDeps, request.id, request.headers) }),
  });
  fastify.get('/healthz', async () => ({ status: 'ok' }));
  await registerStripeWebhook(fastify, { orm, webhookSecret: config.stripe.webhookSecret, invalidate });

  return {
    fastify,
    apollo,
    orm,
    sqlTotals: totals,
    cache,
    async close() {
      // Apollo's drain (fastifyApolloDrainPlugin) closes Fastify: no new connections, in-flight
      // operations finish, idle keep-alive sockets close, then the pool.
      await apollo.stop();
      await cache?.close();
      await orm.close(true);
    },
  };
}
