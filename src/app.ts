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
import { CacheService } from './core/cache/index.js';
import { secretKey } from './modules/auth/auth.js';

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
}

/** Mutations never read through the cache: a write must see, and act on, the data as it is. */
function cachePolicyPlugin(): ApolloServerPlugin<Context> {
  return {
    async requestDidStart() {
      return {
        async didResolveOperation({ operation, contextValue }) {
          if (operation?.operation !== 'query') contextValue.cache.disable();
        },
      };
    },
  };
}

/**
 * Adds `extensions.sql` and `extensions.cache` to each response: what makes statement counts and
 * cache behaviour visible in Apollo Sandbox.
 */
function debugStatsPlugin(): ApolloServerPlugin<Context> {
  return {
    async requestDidStart() {
      return {
        async willSendResponse({ contextValue, response }) {
          if (response.body.kind !== 'single' || !contextValue?.sql) return;
          const { statements, durationMs, texts } = contextValue.sql;
          response.body.singleResult.extensions = {
            ...response.body.singleResult.extensions,
            sql: { statements, durationMs, queries: texts?.map((t) => t.sql) ?? [] },
            cache: { enabled: contextValue.cache.enabled, ...contextValue.cache.getStats() },
          };
        },
      };
    },
  };
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
  });
  const jwtKey = secretKey(config.jwtSecret);
  const schema = await buildAppSchema(options.extraResolvers);

  const fastify = Fastify({
    logger: config.logLevel === 'silent' ? false : { level: config.logLevel },
    bodyLimit: 100 * 1024,
    // One line per GraphQL operation is what operators want, not two per HTTP request.
    disableRequestLogging: true,
  });

  const plugins: ApolloServerPlugin<Context>[] = [
    fastifyApolloDrainPlugin(fastify),
    // Not used by this API, and each costs time on every field or request.
    ApolloServerPluginCacheControlDisabled(),
    ApolloServerPluginInlineTraceDisabled(),
    ApolloServerPluginUsageReportingDisabled(),
    cachePolicyPlugin(),
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
  const contextDeps = { orm, jwtKey, keepSqlTexts: config.debugSql, cache };
  fastify.route({
    url: '/graphql',
    method: ['GET', 'POST', 'OPTIONS'],
    handler: fastifyApolloHandler(apollo, { context: async (request) => buildContext(contextDeps, request.headers) }),
  });
  fastify.get('/healthz', async () => ({ status: 'ok' }));

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
