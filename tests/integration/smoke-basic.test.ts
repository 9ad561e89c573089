import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/test-app.js';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp({ seed: { users: 10, paymentsPerUser: 20 } });
});
afterAll(async () => t?.close());

describe('basic', () => {
  it('lists users with payments in two statements', async () => {
    const r = await t.gql('{ users(first: 5) { nodes { id email payments(first: 3) { nodes { id amount user { email } } } } } }', {
      token: await t.adminToken(),
    });
    expect(r.body.errors).toBeUndefined();
    expect(r.body.data!.users.nodes).toHaveLength(5);
    expect(r.statements).toBe(2);
  });
});
