import { ApolloArmor } from '@escape.tech/graphql-armor';
import type { ApolloServerPlugin } from '@apollo/server';
import {
  getNamedType,
  GraphQLError,
  isCompositeType,
  isObjectType,
  Kind,
  type DocumentNode,
  type FragmentDefinitionNode,
  type GraphQLCompositeType,
  type GraphQLObjectType,
  type OperationDefinitionNode,
  type GraphQLSchema,
  type SelectionSetNode,
  type ValueNode,
} from 'graphql';
import type { Config } from '../config.js';
import { DEFAULT_PAGE_SIZE } from './pagination.js';

/**
 * GraphQL Armor's limits: depth, aliases, tokens, directives, and no field suggestions ("did you
 * mean") outside development. Rejections are GRAPHQL_VALIDATION_FAILED and run
 * before any resolver, so they cost no SQL.
 */
export function armorProtection(config: Config) {
  const armor = new ApolloArmor({
    maxDepth: { n: config.graphql.maxDepth, flattenFragments: true },
    maxAliases: { n: config.graphql.maxAliases },
    // Applied by graphql-js's own parser (Apollo's `parseOptions.maxTokens`, see app/graphql.ts): Armor's
    // plugin throws from a hook, which Apollo answers as an internal error (500).
    maxTokens: { enabled: false },
    maxDirectives: { n: config.graphql.maxDirectives },
    // Armor's cost estimate knows nothing of list sizes (Q1, 100 users x 10 payments, scores 45,000
    // by default while a 3-level query of 100-item lists that costs a million rows can score less):
    // `paginationCostPlugin` below replaces it with a cost that multiplies each list by its `first`.
    costLimit: { enabled: false },
    blockFieldSuggestion: { enabled: config.env !== 'development' },
  });
  return armor.protect();
}

/**
 * The cost of an operation with each list counted as many times as it may return: every field costs
 * 1, and a field that takes `first` multiplies the cost of its selection by `first` (its default when
 * absent). `users(first:100){nodes{payments(first:10){nodes{id}}}}` costs about 100 x 10. GraphQL
 * Armor has no argument-based multipliers, hence this rule of ours.
 */
export function operationCost(
  schema: GraphQLSchema,
  selectionSet: SelectionSetNode,
  parentType: GraphQLCompositeType,
  fragments: Record<string, FragmentDefinitionNode>,
  variables: Record<string, unknown>,
  seen: Set<string> = new Set(),
): number {
  let cost = 0;
  for (const selection of selectionSet.selections) {
    if (selection.kind === Kind.FIELD) {
      cost += 1;
      if (!selection.selectionSet || !isObjectType(parentType)) continue;
      const field = parentType.getFields()[selection.name.value];
      if (!field) continue;
      const childType = getNamedType(field.type);
      if (!isCompositeType(childType)) continue;
      let multiplier = 1;
      const firstArg = field.args.find((a) => a.name === 'first');
      if (firstArg) {
        const given = selection.arguments?.find((a) => a.name.value === 'first')?.value;
        const value = given ? valueOf(given, variables) : undefined;
        multiplier = typeof value === 'number' && value > 0 ? value : typeof firstArg.defaultValue === 'number' ? firstArg.defaultValue : DEFAULT_PAGE_SIZE;
      }
      cost += multiplier * operationCost(schema, selection.selectionSet, childType, fragments, variables, seen);
    } else if (selection.kind === Kind.INLINE_FRAGMENT) {
      const type = selection.typeCondition ? (schema.getType(selection.typeCondition.name.value) as GraphQLCompositeType) : parentType;
      cost += operationCost(schema, selection.selectionSet, type ?? parentType, fragments, variables, seen);
    } else {
      const name = selection.name.value;
      const fragment = fragments[name];
      if (!fragment || seen.has(name)) continue; // cycles are a validation error anyway
      const type = schema.getType(fragment.typeCondition.name.value) as GraphQLCompositeType;
      cost += operationCost(schema, fragment.selectionSet, type ?? parentType, fragments, variables, new Set([...seen, name]));
    }
  }
  return cost;
}

function valueOf(node: ValueNode, variables: Record<string, unknown>): unknown {
  if (node.kind === Kind.INT) return Number(node.value);
  if (node.kind === Kind.VARIABLE) return variables[node.name.value];
  return undefined;
}

/** What cost analysis needs of Apollo's request context once the operation is resolved. */
interface ResolvedOperation {
  schema: GraphQLSchema;
  document: DocumentNode;
  operation?: OperationDefinitionNode | null;
  request: { variables?: Record<string, unknown> | null };
}

/** The fragments of a document by name. */
export function fragmentsOf(document: DocumentNode): Record<string, FragmentDefinitionNode> {
  const fragments: Record<string, FragmentDefinitionNode> = {};
  for (const d of document.definitions) if (d.kind === Kind.FRAGMENT_DEFINITION) fragments[d.name.value] = d;
  return fragments;
}

/** The root type an operation's selection starts from. */
export function rootTypeOf(schema: GraphQLSchema, operation: OperationDefinitionNode): GraphQLObjectType | null | undefined {
  return operation.operation === 'mutation' ? schema.getMutationType() : operation.operation === 'subscription' ? schema.getSubscriptionType() : schema.getQueryType();
}

/**
 * The operation's `first`-multiplied cost (`operationCost`), refused before execution when over
 * `maxCost` (GRAPHQL_VALIDATION_FAILED, HTTP 400). 0 when there is no operation to run.
 */
export function checkedOperationCost({ schema, document, operation, request }: ResolvedOperation, maxCost: number): number {
  if (!operation) return 0;
  const root = rootTypeOf(schema, operation);
  if (!root) return 0;
  const cost = operationCost(schema, operation.selectionSet, root, fragmentsOf(document), request.variables ?? {});
  if (cost > maxCost) {
    throw new GraphQLError(`Query is too expensive: cost ${cost} is over the limit of ${maxCost} (lists count as many times as their "first")`, {
      extensions: { code: 'GRAPHQL_VALIDATION_FAILED', cost, maxCost, http: { status: 400 } },
    });
  }
  return cost;
}

/**
 * Rejects, before execution, an operation whose `first`-multiplied cost is over the limit. (With cost
 * budgets on, src/modules/limits makes the same check and takes the cost from the client's budget.)
 */
export function paginationCostPlugin<T extends object>(maxCost: number): ApolloServerPlugin<T> {
  const listener = {
    async didResolveOperation(requestContext: ResolvedOperation) {
      checkedOperationCost(requestContext, maxCost);
    },
  };
  return {
    async requestDidStart() {
      return listener;
    },
  };
}
