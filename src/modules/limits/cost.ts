import type { FragmentDefinitionNode, GraphQLCompositeType, GraphQLSchema, SelectionSetNode } from 'graphql';
import { forEachField } from '../../core/security.js';

/**
 * What a response really cost, from what it holds: every field 1, and a field whose value is an object
 * or a list adds the cost of each object it returned (a page of 3 payments costs 3 objects, whatever its
 * `first`). It walks the same selection as `operationCost`, so a full page of a list costs about what was
 * asked for and a short page less; callers cap it at the requested cost.
 */
export function responseCost(
  schema: GraphQLSchema,
  selectionSet: SelectionSetNode,
  parentType: GraphQLCompositeType,
  fragments: Record<string, FragmentDefinitionNode>,
  value: unknown,
  seen: ReadonlySet<string> = new Set(),
): number {
  if (value === null || typeof value !== 'object') return 0;
  let cost = 0;
  forEachField(
    schema,
    selectionSet,
    parentType,
    fragments,
    ({ selection, child }, seenHere) => {
      cost += 1;
      if (child) cost += objectsCost(schema, child.selectionSet, child.type, fragments, (value as Record<string, unknown>)[selection.alias?.value ?? selection.name.value], seenHere);
    },
    seen,
  );
  return cost;
}

function objectsCost(
  schema: GraphQLSchema,
  selectionSet: SelectionSetNode,
  type: GraphQLCompositeType,
  fragments: Record<string, FragmentDefinitionNode>,
  value: unknown,
  seen: ReadonlySet<string>,
): number {
  if (!Array.isArray(value)) return responseCost(schema, selectionSet, type, fragments, value, seen);
  let cost = 0;
  for (const item of value) cost += objectsCost(schema, selectionSet, type, fragments, item, seen);
  return cost;
}
