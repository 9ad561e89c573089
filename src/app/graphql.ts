import type { FastifyInstance } from 'fastify';
import { ApolloServer, type ApolloServerPlugin } from '@apollo/server';
import {
  ApolloServerPluginCacheControlDisabled,
  ApolloServerPluginInlineTraceDisabled,
  ApolloServerPluginUsageReportingDisabled,
} from '@apollo/server/plugin/disabled';
import { fastifyApolloDrainPlugin } from '@as-integrations/fastify';
import type { ValidationRule } from 'graphql';
import type { Config } from '../config.js';
import type { Context, ContextDeps } from '../context.js';
import type { Database } from './database.js';
import type { Services } from './services.js';
import { buildServedSchema } from '../schema.js';
import { formatClientError } from '../core/errors.js';
import { armorProtection, paginationCostPlugin } from '../core/security.js';
import { jitGateway } from '../core/jit-executor.js';
import { HotDocumentStore } from '../core/document-store.js';
import { debugStatsPlugin, errorResponsePlugin, graphqlOverHttpStatusPlugin, nPlusOnePlugin, operationLogPlugin, requestPolicyPlugin } from '../core/apollo-plugins.js';
import { createPaymentService } from '../modules/payment/payment.service.js';
import { PaymentAttempts } from '../modules/payment/payment.attempts.js';
import { createRealtime, type Realtime } from '../modules/realtime/realtime.js';
import { loadTrustedDocuments, registerTrustedDocuments, type TrustedDocuments } from '../modules/documents/trusted-documents.js';
import { ResponseCache } from '../modules/response-cache/response-cache.js';
import { clientAddress, createLimits, type Limits } from '../modules/limits/limits.js';
import { registerGraphqlRoute } from './graphql-route.js';

export interface GraphqlOptions {
  /** Extra resolver classes (tests only: e.g. a deliberately naive one). */
  extraResolvers?: Function[];
}

export interface Graphql {
  apollo: ApolloServer<Context>;
  realtime: Realtime;
  limits: Limits | null;
  responseCache: ResponseCache | null;
  documentStore: HotDocumentStore;
  /** How many documents the jit executor holds compiled, and counts runs of; null with graphql-js. */
  executorSizes: { compiled: () => number; counted: () => number } | null;
}

/**
 * Step 4: the schema; the limits on what an operation may cost (armor, cost budgets); subscriptions;
 * Apollo with its plugins (in the order they act); what each request's context is made of; and the
 * `/graphql` route (HTTP, with the response cache in front when on; WebSocket for subscriptions).
 */
export async function createGraphql(config: Config, fastify: FastifyInstance, db: Database, services: Services, options: GraphqlOptions): Promise<Graphql> {
  const { orm } = db;
  const { tokens, cache, routing, stripe, metrics, budgets } = services;
  const schema = await buildServedSchema({ federation: config.graphql.federation, extraResolvers: options.extraResolvers });
  const armor = armorProtection(config);
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
  const responseCache = config.responseCache.enabled
    ? new ResponseCache(cache, {
        ttlSeconds: config.responseCache.ttlSeconds,
        maxMemoryBytes: config.responseCache.maxMemoryMb * 1024 * 1024,
        debugExtensions: config.debugSql,
        costExtension: limits !== null,
        registry: metrics.registry,
      })
    : null;
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
    ...(config.debugSql ? [debugStatsPlugin()] : []),
    ...(responseCache ? [responseCache.plugin()] : []),
  ];

  const documentStore = new HotDocumentStore();
  const jit = config.graphql.executor === 'jit' ? jitGateway(schema, { compileAfter: config.graphql.jitCompileAfter }) : null;
  const apollo = new ApolloServer<Context>({
    ...(jit ? { gateway: jit } : { schema }),
    plugins,
    validationRules: armor.validationRules,
    // Parsed and validated documents, kept for those that come back (see HotDocumentStore).
    documentStore,
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

  const contextDeps: ContextDeps = {
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
  const trustedDocuments: TrustedDocuments | null = config.graphql.trustedDocuments ? await loadTrustedDocuments(config.graphql.trustedDocuments) : null;
  if (trustedDocuments) registerTrustedDocuments(fastify, { documents: trustedDocuments, adminAny: config.graphql.trustedDocumentsAdminAny, tokens });
  registerGraphqlRoute(fastify, { apollo, contextDeps, addressOf, responseCache, limits, metrics });
  await realtime.attach(fastify, schema, contextDeps, trustedDocuments);
  return { apollo, realtime, limits, responseCache, documentStore, executorSizes: jit?.sizes ?? null };
}
