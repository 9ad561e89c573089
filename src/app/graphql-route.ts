import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ApolloServer } from '@apollo/server';
import { fastifyApolloHandler } from '@as-integrations/fastify';
import { buildContext, type Context, type ContextDeps } from '../context.js';
import type { Metrics } from '../core/metrics.js';
import type { Limits } from '../modules/limits/limits.js';
import type { ResponseCache, ResponseCacheResult } from '../modules/response-cache/response-cache.js';

declare module 'fastify' {
  interface FastifyRequest {
    /**
     * The GraphQL context of this request, once built: the response cache builds it before Apollo runs
     * (to know whose response to look up), and Apollo then uses the same one.
     */
    graphqlContext: Context | null;
  }
}

export interface GraphqlRouteDeps {
  apollo: ApolloServer<Context>;
  contextDeps: ContextDeps;
  /** The client's address of a request (TRUSTED_PROXIES applied). */
  addressOf: (peer: string | undefined, headers: FastifyRequest['headers']) => string;
  responseCache: ResponseCache | null;
  limits: Limits | null;
  metrics: Metrics;
}

/**
 * `/graphql` over HTTP (GET, POST; OPTIONS for CORS): Apollo, with the response cache in front of it
 * when it is on. One context per request, made once and kept on the request.
 */
export function registerGraphqlRoute(fastify: FastifyInstance, deps: GraphqlRouteDeps): void {
  const { apollo, contextDeps, addressOf, responseCache, limits, metrics } = deps;
  fastify.decorateRequest('graphqlContext', null);
  const contextOf = (request: FastifyRequest): Promise<Context> =>
    buildContext(contextDeps, request.id, request.headers, addressOf(request.socket.remoteAddress, request.headers));
  const apolloHandler = fastifyApolloHandler(apollo, { context: async (request) => request.graphqlContext ?? contextOf(request) });
  if (!responseCache) {
    fastify.route({ url: '/graphql', method: ['GET', 'POST', 'OPTIONS'], handler: apolloHandler });
    return;
  }

  async function withResponseCache(this: FastifyInstance, request: Parameters<typeof apolloHandler>[0], reply: Parameters<typeof apolloHandler>[1]) {
    const cache = responseCache!;
    const bypass = () => {
      cache.count('bypass');
      void reply.header('x-response-cache', 'bypass');
      return apolloHandler.call(this, request, reply);
    };
    if (request.method !== 'POST') return bypass();
    let context: Context;
    try {
      context = await contextOf(request);
    } catch {
      // A refused token: Apollo builds the context again and answers with the error.
      return bypass();
    }
    request.graphqlContext = context;
    const plan = cache.plan(request.body, request.headers, context.viewer);
    if ('key' in plan) {
      const started = performance.now();
      const hit = await cache.lookup(plan.key);
      if (hit) {
        // A hit costs its client a little of its budget (a cached response still takes serving).
        const charge = limits ? await limits.chargeCachedHit(context.viewer!, context.clientAddress) : null;
        if (charge && 'refusal' in charge) {
          cache.count('bypass');
          return reply.code(charge.refusal.status).headers(Object.fromEntries(charge.refusal.headers)).header('content-type', 'application/json; charset=utf-8').send(charge.refusal.body);
        }
        cache.count('hit');
        const seconds = (performance.now() - started) / 1000;
        metrics.observeAnswered(hit.operationName, seconds);
        request.log.info(
          { requestId: request.id, clientRequestId: context.clientRequestId ?? undefined, operation: hit.operationName, viewer: context.viewer?.id ?? null, outcome: 'ok', durationMs: Math.round(seconds * 10_000) / 10, sql: { statements: 0, durationMs: 0 }, responseCache: 'hit' },
          'graphql operation',
        );
        if (charge) void reply.headers(Object.fromEntries(charge.headers));
        const body = charge ? cache.withExtension(hit.body, 'cost', charge.cost) : hit.body;
        return reply.code(200).header('content-type', hit.contentType).header('x-response-cache', 'hit').send(body);
      }
    }
    const body = await apolloHandler.call(this, request, reply);
    let result: ResponseCacheResult = 'bypass';
    if ('key' in plan && typeof body === 'string') {
      result = await cache.store(plan.key, context, body, reply.statusCode, reply.getHeader('content-type') as string | undefined);
    }
    cache.count(result);
    void reply.header('x-response-cache', result);
    return body;
  }
  fastify.route({ url: '/graphql', method: ['GET', 'POST', 'OPTIONS'], handler: withResponseCache });
}
