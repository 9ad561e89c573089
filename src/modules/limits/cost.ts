import {
  getNamedType,
  isCompositeType,
  isObjectType,
  Kind,
  type FragmentDefinitionNode,
  type GraphQLCompositeType,
  type GraphQLSchema,
  type SelectionSetNode,
} from 'graphql';

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
  for (const selection of selectionSet.selections) {
    if (selection.kind === Kind.FIELD) {
      cost += 1;
      if (!selection.selectionSet || !isObjectType(parentType)) continue;
      const field = parentType.getFields()[selection.name.value];
      if (!field) continue;
      const childType = getNamedType(field.type);
      if (!isCompositeType(childType)) continue;
      const child = (value as Record<string, unknown>)[selection.alias?.value ?? selection.name.value];
      cost += objectsCost(schema, selection.selectionSet, childType, fragments, child, seen);
    } else if (selection.kind === Kind.INLINE_FRAGMENT) {
      const type = selection.typeCondition ? (schema.getType(selection.typeCondition.name.value) as GraphQLCompositeType | undefined) : parentType;
      cost += responseCost(schema, selection.selectionSet, type ?? parentType, fragments, value, seen);
    } else {
      const name = selection.name.value;
      const fragment = fragments[name];
      if (!fragment || seen.has(name)) continue;
      const type = schema.getType(fragment.typeCondition.name.value) as GraphQLCompositeType | undefined;
      cost += responseCost(schema, fragment.selectionSet, type ?? parentType, fragments, value, new Set([...seen, name]));
    }
  }
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
