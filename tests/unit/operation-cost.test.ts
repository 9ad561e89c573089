import { describe, expect, it } from 'vitest';
import { Kind, parse, type FragmentDefinitionNode, type OperationDefinitionNode } from 'graphql';
import { buildAppSchema } from '../../src/schema.js';
import { operationCost } from '../../src/core/security.js';

const schema = await buildAppSchema();

function cost(query: string, variables: Record<string, unknown> = {}): number {
  const doc = parse(query);
  const op = doc.definitions.find((d) => d.kind === Kind.OPERATION_DEFINITION) as OperationDefinitionNode;
  const fragments = Object.fromEntries(
    doc.definitions.filter((d): d is FragmentDefinitionNode => d.kind === Kind.FRAGMENT_DEFINITION).map((f) => [f.name.value, f]),
  );
  return operationCost(schema, op.selectionSet, schema.getQueryType()!, fragments, variables);
}

describe('operationCost', () => {
  it('multiplies each list by its first: Q1 (100 users x 10 payments with their user)', () => {
    // users 1 + 100 x (nodes 1 + id 1 + email 1 + payments 1 + 10 x (nodes 1 + id, amount, status 3 + user 1 + email 1))
    expect(cost('{ users(first: 100) { nodes { id email payments(first: 10) { nodes { id amount status user { email } } } } } }')).toBe(1 + 100 * (4 + 10 * 6));
  });

  it('uses the default first when none is given, and variables when given', () => {
    expect(cost('{ users { nodes { id } } }')).toBe(1 + 20 * 2);
    expect(cost('query($n: Int) { users(first: $n) { nodes { id } } }', { n: 50 })).toBe(1 + 50 * 2);
  });

  it('counts fragments where they are spread', () => {
    expect(cost('{ users(first: 10) { ...page } } fragment page on UserConnection { nodes { id email } }')).toBe(1 + 10 * 3);
  });

  it('puts three nested 100-item lists over a million', () => {
    expect(cost('{ users(first: 100) { nodes { payments(first: 100) { nodes { user { payments(first: 100) { nodes { id } } } } } } } }')).toBeGreaterThan(1_000_000);
  });
});
