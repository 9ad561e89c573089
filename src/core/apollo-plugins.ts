import type { ApolloServerPlugin, GraphQLRequestContextDidResolveOperation } from '@apollo/server';
import Negotiator from 'negotiator';
import type { FastifyBaseLogger } from 'fastify';
import type { RequestScope } from './request-scope.js';
import { isClientErrorCode, RETRY_AFTER_SECONDS } from './errors.js';
import { isDatabaseUnavailable } from './db-errors.js';
import { currentTraceId } from './tracing.js';

/**
 * What a request may keep and read, decided once its operation is known (one plugin, one hook: each
 * plugin costs every request a listener):
 * - mutations never read through the cache: a write must see, and act on, the data as it is;
 * - automatic persisted queries are registered (kept in the shared store for a day) for viewers with
 *   a token only: an anonymous client may still send any document in full, but cannot make the server
 *   keep one. Apollo registers after `didResolveOperation`, so this is where it is told not to.
 */
export function requestPolicyPlugin(): ApolloServerPlugin<RequestScope> {
  const listener = {
    async didResolveOperation(requestContext: GraphQLRequestContextDidResolveOperation<RequestScope>) {
      if (requestContext.operation?.operation !== 'query') requestContext.contextValue.cache.disable();
      if (!requestContext.contextValue.viewer) requestContext.metrics.persistedQueryRegister = false;
    },
  };
  return {
    async requestDidStart() {
      return listener;
    },
  };
}

/**
 * Adds `extensions.sql` and `extensions.cache` to each response: what makes statement counts and
 * cache behaviour visible in Apollo Sandbox.
 */
export function debugStatsPlugin(): ApolloServerPlugin<RequestScope> {
  return {
    async requestDidStart() {
      return {
        async willSendResponse({ contextValue, response }) {
          if (response.body.kind !== 'single' || !contextValue?.sql) return;
          const { statements, durationMs, texts } = contextValue.sql;
          response.body.singleResult.extensions = {
            ...response.body.singleResult.extensions,
            sql: { statements, durationMs, queries: texts?.map((t) => t.sql) ?? [], targets: texts?.map((t) => t.target) ?? [] },
            cache: { enabled: contextValue.cache.enabled, ...contextValue.cache.getStats() },
          };
        },
      };
    },
  };
}

/**
 * One log line per GraphQL operation: request id, operation, viewer, outcome and error codes,
 * duration, SQL statements and time, cache stats. Unexpected errors are logged with their stack
 * (clients see them masked in production).
 */
export function operationLogPlugin(log: FastifyBaseLogger): ApolloServerPlugin<RequestScope> {
  const infoEnabled = ['trace', 'debug', 'info'].includes(log.level);
  // The database being away fails every request at once: its cause is logged once a second at most.
  let lastUnavailableLog = 0;
  let unavailableSince = 0;
  return {
    async requestDidStart() {
      const started = performance.now();
      let codes: string[] = [];
      return {
        async didEncounterErrors({ errors, contextValue }) {
          // The codes clients get: the database's errors reach them as SERVICE_UNAVAILABLE (formatClientError).
          const unavailable = errors.map((e) => e.extensions?.code === 'SERVICE_UNAVAILABLE' || isDatabaseUnavailable(e));
          codes = errors.map((e, i) => (unavailable[i] ? 'SERVICE_UNAVAILABLE' : String(e.extensions?.code ?? 'INTERNAL_SERVER_ERROR')));
          for (const [i, error] of errors.entries()) {
            if (unavailable[i]) {
              unavailableSince++;
              const now = Date.now();
              if (now - lastUnavailableLog >= 1000) {
                log.warn({ requestId: contextValue.requestId, err: error.originalError ?? error, path: error.path, failedSinceLastReport: unavailableSince }, 'database unavailable');
                lastUnavailableLog = now;
                unavailableSince = 0;
              }
              continue;
            }
            if (isClientErrorCode(error.extensions?.code)) continue;
            log.error({ requestId: contextValue.requestId, err: error.originalError ?? error, path: error.path }, 'unexpected error in a GraphQL operation');
          }
        },
        async willSendResponse({ contextValue, operationName }) {
          if (!infoEnabled) return;
          log.info(
            {
              requestId: contextValue.requestId,
              clientRequestId: contextValue.clientRequestId ?? undefined,
              traceId: currentTraceId(),
              operation: operationName ?? null,
              viewer: contextValue.viewer?.id ?? null,
              outcome: codes.length === 0 ? 'ok' : 'error',
              errors: codes.length ? codes : undefined,
              durationMs: Math.round((performance.now() - started) * 10) / 10,
              sql: { statements: contextValue.sql.statements, durationMs: contextValue.sql.durationMs },
              cache: contextValue.cache.enabled ? contextValue.cache.getStats() : { enabled: false },
            },
            'graphql operation',
          );
        },
      };
    },
  };
}

/**
 * Reports a statement shape repeated more often than the threshold in one request (an N+1): a warning
 * naming the shape and the GraphQL path, and in `error` mode a failed request (N_PLUS_ONE_DETECTED,
 * HTTP 500), which is how the test suite turns any N+1 regression into a failing test.
 */
export function nPlusOnePlugin(
  mode: 'off' | 'warn' | 'error',
  log: FastifyBaseLogger,
  options: { /** SQL shapes in the response (never in production: they are internals; the log keeps them). */ exposeShapes: boolean },
): ApolloServerPlugin<RequestScope> {
  return {
    async requestDidStart() {
      if (mode === 'off') return {};
      return {
        async willSendResponse({ contextValue, response, operationName }) {
          const repeated = contextValue.sql.repeated;
          if (repeated.length === 0) return;
          log.warn({ requestId: contextValue.requestId, operation: operationName ?? null, repeated }, 'N+1 query detected');
          if (mode !== 'error' || response.body.kind !== 'single') return;
          const [first] = repeated;
          response.http.status = 500;
          response.body.singleResult = {
            data: null,
            errors: [
              options.exposeShapes
                ? {
                    message: `N+1 query detected: "${first!.shape}" ran ${first!.count} times${first!.path ? ` at ${first!.path}` : ''}`,
                    extensions: { code: 'N_PLUS_ONE_DETECTED', repeated },
                  }
                : { message: 'N+1 query detected', extensions: { code: 'N_PLUS_ONE_DETECTED', requestId: contextValue.requestId } },
            ],
            extensions: response.body.singleResult.extensions,
          };
        },
      };
    },
  };
}

/**
 * Unexpected errors carry the request id (so a client can quote it and the log line be found), and a
 * response whose errors are all SERVICE_UNAVAILABLE is an HTTP 503 with Retry-After, which clients and
 * proxies retry.
 */
export function errorResponsePlugin(): ApolloServerPlugin<RequestScope> {
  return {
    async requestDidStart() {
      return {
        async willSendResponse({ contextValue, response }) {
          if (response.body.kind !== 'single' || !response.body.singleResult.errors) return;
          const errors = response.body.singleResult.errors;
          response.body.singleResult.errors = errors.map((e) =>
            e.extensions?.code === 'INTERNAL_SERVER_ERROR' || e.extensions?.code === 'SERVICE_UNAVAILABLE'
              ? { ...e, extensions: { ...e.extensions, requestId: contextValue.requestId } }
              : e,
          );
          if (errors.every((e) => e.extensions?.code === 'SERVICE_UNAVAILABLE')) {
            response.http.status = 503;
            response.http.headers.set('retry-after', String(RETRY_AFTER_SECONDS));
          }
        },
      };
    },
  };
}

/** Errors that mean the request could not be run at all: its document or its variables. */
const REQUEST_ERROR_CODES: ReadonlySet<unknown> = new Set(['GRAPHQL_PARSE_FAILED', 'GRAPHQL_VALIDATION_FAILED', 'BAD_USER_INPUT']);

/** The media type Apollo answers a single result with, chosen the way Apollo chooses it. */
function responseMediaType(accept: string | undefined): string {
  if (!accept) return 'application/json';
  return new Negotiator({ headers: { accept } }).mediaType(['application/json', 'application/graphql-response+json']) ?? 'application/json';
}

/**
 * GraphQL over HTTP, as the spec says: a request that could not be run (a parse or validation failure,
 * variables that do not coerce) is a 4xx when answered as `application/graphql-response+json`, and a
 * 200 with `errors` when answered as `application/json` (what older clients expect). Apollo answers 400
 * for both; this gives `application/json` its 200. Codes and bodies are unchanged.
 */
export function graphqlOverHttpStatusPlugin(): ApolloServerPlugin<RequestScope> {
  return {
    async requestDidStart() {
      return {
        async willSendResponse({ request, response }) {
          if (response.http.status !== 400 || response.body.kind !== 'single') return;
          const result = response.body.singleResult;
          if (result.data !== undefined || !result.errors?.length) return;
          if (!result.errors.every((e) => REQUEST_ERROR_CODES.has(e.extensions?.code))) return;
          if (responseMediaType(request.http?.headers.get('accept')) !== 'application/json') return;
          response.http.status = 200;
        },
      };
    },
  };
}
