import type { GatewayExecutor, GatewayInterface } from '@apollo/server-gateway-interface';
import { compileQuery, isCompiledQuery, type CompiledQuery } from 'graphql-jit';
import { getVariableValues, GraphQLError, printSchema, type ExecutionResult, type GraphQLSchema } from 'graphql';
import { traced } from './tracing.js';

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

/** Compiled operations kept at most (one per distinct document and operation name). */
const MAX_COMPILED = 1000;

/**
 * Executes operations with graphql-jit instead of graphql-js, behind Apollo's gateway interface (the
 * documented way to give Apollo Server another executor). Each distinct operation is compiled once
 * into a specialised function and kept; Apollo still parses, validates, runs every plugin hook and
 * formats the response. Resolvers see the same (root, args, context, info) as with graphql-js.
 */
export function jitGateway(schema: GraphQLSchema): GatewayInterface {
  const compiled = new Map<string, CompiledQuery | ExecutionResult>();
  const executor: GatewayExecutor = async (requestContext) => {
    if (!requestContext.operation) {
      // Apollo answers OPERATION_RESOLUTION_FAILURE (400) with this error, as graphql-js words it.
      // The request's name: Apollo leaves `operationName` unset when it resolved no operation.
      const name = requestContext.request.operationName;
      return { errors: [new GraphQLError(name ? `Unknown operation named "${name}".` : 'Must provide operation name if query contains multiple operations.')] };
    }
    const key = `${requestContext.queryHash}:${requestContext.operationName ?? ''}`;
    let query = compiled.get(key);
    if (!query) {
      query = compileQuery(schema, requestContext.document, requestContext.operationName ?? undefined, {
        // Apollo serialises the response itself.
        customJSONSerializer: false,
      });
      if (compiled.size >= MAX_COMPILED) compiled.delete(compiled.keys().next().value!);
      compiled.set(key, query);
    }
    if (!isCompiledQuery(query)) return withPlainErrors(query);
    // graphql-js coerces the variables, so a bad one is reported exactly as Apollo reports it without
    // the gateway (BAD_USER_INPUT, HTTP 400).
    const coerced = getVariableValues(schema, requestContext.operation.variableDefinitions ?? [], requestContext.request.variables ?? {});
    if (coerced.errors) return { errors: coerced.errors };
    const compiledQuery = query;
    // One span for the operation, parent of every loader batch and statement it causes.
    return traced(
      `graphql.${requestContext.operation.operation} ${requestContext.operationName ?? 'anonymous'}`,
      {
        'graphql.operation.name': requestContext.operationName ?? '',
        'graphql.operation.type': requestContext.operation.operation,
        'graphql.document.hash': requestContext.queryHash ?? '',
      },
      async (span) => {
        const result = withPlainErrors(await compiledQuery.query(undefined, requestContext.context, coerced.coerced));
        if (span && result.errors?.length) span.setAttribute('graphql.errors', result.errors.length);
        return result;
      },
    );
  };

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
      compiled.clear();
    },
  };
}
