import type { GatewayExecutor, GatewayInterface } from '@apollo/server-gateway-interface';
import { compileQuery, isCompiledQuery, type CompiledQuery } from 'graphql-jit';
import { execute, getVariableValues, GraphQLError, printSchema, type ExecutionResult, type GraphQLSchema } from 'graphql';
import { traced } from './tracing.js';
import { Lru } from './lru.js';

/**
 * graphql-jit's errors have read-only properties, which plugins that rewrite messages (GraphQL Armor's
 * suggestion blocking) cannot handle: hand Apollo ordinary GraphQLErrors with the same content.
 */
function withPlainErrors(result: ExecutionResult): ExecutionResult {
  if (!result.errors?.length) return result;
  const errors = result.errors.map((e) => {
    const plain = new GraphQLError(e.message, { path: e.path, originalError: e.originalError ?? undefined, extensions: e.extensions });
    if (e.locations) (plain as { locations?: unknown }).locations = e.locations;
    return plain;
  });
  return { ...result, errors };
}

/** Compiled operations kept at most (one per distinct document and operation name), least recently used out. */
const MAX_COMPILED = 100;
/** Documents whose runs are counted at most, least recently seen out. */
const MAX_COUNTED = 10_000;

export interface JitOptions {
  /**
   * A document is compiled when it runs for this time; before, graphql-js executes it. A compile costs
   * time and about a megabyte, which a document sent once (an id written into the text, as Sandbox
   * users and scripts do) never pays back.
   */
  compileAfter?: number;
}

/**
 * Executes operations with graphql-jit instead of graphql-js, behind Apollo's gateway interface (the
 * documented way to give Apollo Server another executor). A document that keeps coming back (the
 * `compileAfter`-th run) is compiled once into a specialised function and kept (at most 100, least
 * recently used out: about a megabyte each, so about 100 MB at most); until then, and for documents seen once, graphql-js executes it, as the
 * Fastify adapter Mercurius does. Apollo still parses, validates, runs every plugin hook and formats
 * the response. Resolvers see the same (root, args, context, info) either way.
 */
export function jitGateway(schema: GraphQLSchema, options: JitOptions = {}): GatewayInterface & { sizes: { compiled: () => number; counted: () => number } } {
  const compileAfter = Math.max(1, options.compileAfter ?? 2);
  const compiled = new Lru<string, CompiledQuery | ExecutionResult>(MAX_COMPILED);
  const runs = new Lru<string, number>(MAX_COUNTED);
  const executor: GatewayExecutor = async (requestContext) => {
    if (!requestContext.operation) {
      // Apollo answers OPERATION_RESOLUTION_FAILURE (400) with this error, as graphql-js words it.
      // The request's name: Apollo leaves `operationName` unset when it resolved no operation.
      const name = requestContext.request.operationName;
      return { errors: [new GraphQLError(name ? `Unknown operation named "${name}".` : 'Must provide operation name if query contains multiple operations.')] };
    }
    const { operation, operationName } = requestContext;
    const key = `${requestContext.queryHash}:${operationName ?? ''}`;
    let query = compiled.get(key);
    if (!query) {
      const seen = (runs.get(key) ?? 0) + 1;
      if (seen < compileAfter) {
        runs.set(key, seen);
        return traceOperation(requestContext, 'graphql-js', () =>
          execute({
            schema,
            document: requestContext.document,
            operationName: operationName ?? undefined,
            variableValues: requestContext.request.variables ?? {},
            contextValue: requestContext.context,
          }),
        );
      }
      runs.delete(key);
      query = compileQuery(schema, requestContext.document, requestContext.operationName ?? undefined, {
        // Apollo serialises the response itself.
        customJSONSerializer: false,
      });
      compiled.set(key, query);
    }
    if (!isCompiledQuery(query)) return withPlainErrors(query);
    // graphql-js coerces the variables, so a bad one is reported exactly as Apollo reports it without
    // the gateway (BAD_USER_INPUT, HTTP 400).
    const coerced = getVariableValues(schema, operation.variableDefinitions ?? [], requestContext.request.variables ?? {});
    if (coerced.errors) return { errors: coerced.errors };
    const compiledQuery = query;
    return traceOperation(requestContext, 'graphql-jit', async () => withPlainErrors(await compiledQuery.query(undefined, requestContext.context, coerced.coerced)));
  };

  return gateway(schema, executor, () => {
    compiled.clear();
    runs.clear();
  }, { compiled: () => compiled.size, counted: () => runs.size });
}

/** One span for the operation, parent of every loader batch and statement it causes. */
function traceOperation(
  requestContext: Parameters<GatewayExecutor>[0],
  executor: 'graphql-js' | 'graphql-jit',
  run: () => ExecutionResult | Promise<ExecutionResult>,
): Promise<ExecutionResult> {
  const type = requestContext.operation!.operation;
  const name = requestContext.operationName ?? '';
  return traced(
    `graphql.${type} ${name || 'anonymous'}`,
    { 'graphql.operation.name': name, 'graphql.operation.type': type, 'graphql.document.hash': requestContext.queryHash ?? '', 'graphql.executor': executor },
    async (span) => {
      const result = await run();
      if (span && result.errors?.length) span.setAttribute('graphql.errors', result.errors.length);
      return result;
    },
  );
}

/** Apollo's gateway interface around an executor. */
function gateway(schema: GraphQLSchema, executor: GatewayExecutor, clear: () => void, sizes: { compiled: () => number; counted: () => number }): GatewayInterface & { sizes: typeof sizes } {
  let listener: ((s: { apiSchema: GraphQLSchema; coreSupergraphSdl: string }) => void) | null = null;
  return {
    onSchemaLoadOrUpdate(callback) {
      listener = callback;
      return () => {
        listener = null;
      };
    },
    async load() {
      listener?.({ apiSchema: schema, coreSupergraphSdl: printSchema(schema) });
      return { executor };
    },
    async stop() {
      clear();
    },
    sizes,
  };
}
