import { describe, expect, it } from 'vitest';
import { buildSchema, getOperationAST, parse, type OperationDefinitionNode } from 'graphql';
import { LocalBuckets } from '../../src/modules/limits/buckets.js';
import { clientAddress } from '../../src/modules/limits/limits.js';
import { responseCost } from '../../src/modules/limits/cost.js';
import { fragmentsOf, operationCost } from '../../src/core/security.js';

describe('LocalBuckets (the leaky bucket)', () => {
  const spec = { capacity: 10, restorePerSecond: 2 };

  it('takes while there is enough, refuses with the seconds until there is, and refills at the rate up to the capacity', async () => {
    let now = 1_000_000;
    const buckets = new LocalBuckets(100, () => now);
    expect(await buckets.take('k', 6, spec)).toEqual({ allowed: true, available: 4, retryAfterSeconds: 0 });
    expect(await buckets.take('k', 4, spec)).toEqual({ allowed: true, available: 0, retryAfterSeconds: 0 });
    // 3 points at 2 a second: 1.5 s, answered as 2.
    expect(await buckets.take('k', 3, spec)).toEqual({ allowed: false, available: 0, retryAfterSeconds: 2 });
    now += 1500;
    expect(await buckets.take('k', 3, spec)).toEqual({ allowed: true, available: 0, retryAfterSeconds: 0 });
    now += 60_000;
    expect(await buckets.take('k', 0, spec)).toMatchObject({ available: 10 });
    // Giving back never overfills.
    await buckets.give('k', 5, spec);
    expect(await buckets.take('k', 0, spec)).toMatchObject({ available: 10 });
    // Another key is another bucket.
    expect(await buckets.take('other', 10, spec)).toMatchObject({ allowed: true, available: 0 });
  });

  it('forgets the least recently used bucket past its bound (it comes back full)', async () => {
    const buckets = new LocalBuckets(2, () => 0);
    await buckets.take('a', 10, spec);
    await buckets.take('b', 10, spec);
    await buckets.take('a', 0, spec); // a is now the most recent
    await buckets.take('c', 10, spec); // b goes
    expect(await buckets.take('a', 1, spec)).toMatchObject({ allowed: false });
    expect(await buckets.take('b', 0, spec)).toMatchObject({ available: 10 });
  });
});

describe('clientAddress', () => {
  it('is the peer without trusted proxies, whatever X-Forwarded-For says', () => {
    expect(clientAddress('10.0.0.1', '203.0.113.9', 0)).toBe('10.0.0.1');
  });
  it('is the address the outermost trusted proxy appended; entries further left are the client\'s own text', () => {
    expect(clientAddress('10.0.0.1', '198.51.100.7', 1)).toBe('198.51.100.7');
    expect(clientAddress('10.0.0.1', '203.0.113.9, 198.51.100.7', 1)).toBe('198.51.100.7');
    expect(clientAddress('10.0.0.1', ['203.0.113.9, 198.51.100.7', '10.0.0.2'], 2)).toBe('198.51.100.7');
    // Fewer hops than proxies configured: the furthest one known.
    expect(clientAddress('10.0.0.1', '198.51.100.7', 3)).toBe('198.51.100.7');
    expect(clientAddress('10.0.0.1', undefined, 1)).toBe('10.0.0.1');
  });
});

describe('responseCost', () => {
  const schema = buildSchema(`
    type Query { me: User, users(first: Int = 20): UserConnection! }
    type UserConnection { nodes: [User!]!, totalCount: Int! }
    type User { id: ID!, email: String!, payments(first: Int = 10): PaymentConnection! }
    type PaymentConnection { nodes: [Payment!]! }
    type Payment { id: ID!, amount: Int! }
  `);
  const costs = (query: string, data: unknown) => {
    const document = parse(query);
    const operation = getOperationAST(document) as OperationDefinitionNode;
    const fragments = fragmentsOf(document);
    return {
      requested: operationCost(schema, operation.selectionSet, schema.getQueryType()!, fragments, {}),
      actual: responseCost(schema, operation.selectionSet, schema.getQueryType()!, fragments, data),
    };
  };

  it('counts each field once and each object a list returned: a short page costs less than the page asked for', () => {
    const query = '{ users(first: 5) { totalCount nodes { id payments(first: 3) { nodes { amount } } } } }';
    const user = (n: number) => ({ id: String(n), payments: { nodes: Array.from({ length: n }, () => ({ amount: 1 })) } });
    // users 1 + 5 x (totalCount 1 + nodes 1 + id 1 + payments (1 + 3 x (nodes 1 + amount 1)))
    expect(costs(query, { users: { totalCount: 2, nodes: [user(1), user(3)] } })).toEqual({
      requested: 1 + 5 * (1 + 1 + 1 + (1 + 3 * 2)),
      // users 1 + totalCount 1 + nodes 1 + [id 1 + payments 1 + nodes 1 + k amounts] for k = 1 and 3
      actual: 3 + (3 + 1) + (3 + 3),
    });
  });

  it('follows aliases and fragments, and a null costs only its field', () => {
    expect(costs('{ a: me { ...F } b: me { id } } fragment F on User { id email }', { a: { id: '1', email: 'x' }, b: null })).toEqual({ requested: 3 + 2, actual: 3 + 1 });
  });
});
