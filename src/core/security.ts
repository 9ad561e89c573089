import { ApolloArmor } from '@escape.tech/graphql-armor';
import type { ApolloServerPlugin } from '@apollo/server';
import {
  getNamedType,
  GraphQLError,
  isCompositeType,
  isObjectType,
  Kind,
  type DocumentNode,
  type FieldNode,
  type FragmentDefinitionNode,
  type GraphQLCompositeType,
  type GraphQLField,
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

/** A field an operation selects; `child` when it has a selection of its own over a composite type. */
export interface SelectedField {
  selection: FieldNode;
  child: { field: GraphQLField<unknown, unknown>; type: GraphQLCompositeType; selectionSet: SelectionSetNode } | null;
}

function compositeChild(parentType: GraphQLCompositeType, selection: FieldNode): SelectedField['child'] {
  if (!selection.selectionSet || !isObjectType(parentType)) return null;
  const field = parentType.getFields()[selection.name.value];
  if (!field) return null;
  const type = getNamedType(field.type);
  return isCompositeType(type) ? { field, type, selectionSet: selection.selectionSet } : null;
}

/**
 * Calls `visit` for every field selected at this level, through inline and named fragments. A named
 * fragment already expanded on this path is skipped (cycles are a validation error anyway); `visit`
 * gets the fragments expanded so far, for a walk into the field's own selection.
 */
export function forEachField(
  schema: GraphQLSchema,
  selectionSet: SelectionSetNode,
  parentType: GraphQLCompositeType,
  fragments: Record<string, FragmentDefinitionNode>,
  visit: (field: SelectedField, seen: ReadonlySet<string>) => void,
  seen: ReadonlySet<string> = new Set(),
): void {
  for (const selection of selectionSet.selections) {
    if (selection.kind === Kind.FIELD) {
      visit({ selection, child: compositeChild(parentType, selection) }, seen);
    } else if (selection.kind === Kind.INLINE_FRAGMENT) {
      const type = selection.typeCondition ? (schema.getType(selection.typeCondition.name.value) as GraphQLCompositeType | undefined) : parentType;
      forEachField(schema, selection.selectionSet, type ?? parentType, fragments, visit, seen);
    } else {
      const name = selection.name.value;
      const fragment = fragments[name];
      if (!fragment || seen.has(name)) continue;
      const type = schema.getType(fragment.typeCondition.name.value) as GraphQLCompositeType | undefined;
      forEachField(schema, fragment.selectionSet, type ?? parentType, fragments, visit, new Set([...seen, name]));
    }
  }
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
  seen: ReadonlySet<string> = new Set(),
): number {
  let cost = 0;
  forEachField(
    schema,
    selectionSet,
    parentType,
    fragments,
    ({ selection, child }, seenHere) => {
      cost += 1;
      if (child) cost += multiplierOf(child.field, selection, variables) * operationCost(schema, child.selectionSet, child.type, fragments, variables, seenHere);
    },
    seen,
  );
  return cost;
}

/** How many times a field's selection counts: its `first` (or that argument's default), else once. */
function multiplierOf(field: GraphQLField<unknown, unknown>, selection: FieldNode, variables: Record<string, unknown>): number {
  const firstArg = field.args.find((a) => a.name === 'first');
  if (!firstArg) return 1;
  const given = selection.arguments?.find((a) => a.name.value === 'first')?.value;
  const value = given ? valueOf(given, variables) : undefined;
  return typeof value === 'number' && value > 0 ? value : typeof firstArg.defaultValue === 'number' ? firstArg.defaultValue : DEFAULT_PAGE_SIZE;
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
