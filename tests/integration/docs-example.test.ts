import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/test-app.js';

describe.each([{ users: 10, paymentsPerUser: 5 }, { users: 500, paymentsPerUser: 20 }])('with $users users', (seed) => {
  let t: TestApp;
  let admin: string;
  beforeAll(async () => {
    t = await createTestApp({ seed });
    admin = await t.adminToken();
    // A viewer's first request reads their row (1 statement); later ones find it in the shared cache.
    await t.gql('{ __typename }', { token: admin });
  });
  afterAll(async () => t?.close());

  it("users(first: 50) with each one's first 3 payments: 2 statements", async () => {
    const r = await t.gql('{ users(first: 50) { nodes { email payments(first: 3) { nodes { amount } } } } }', { token: admin });
    expect(r.body.errors).toBeUndefined();
    expect(r.body.data!.users.nodes).toHaveLength(Math.min(50, seed.users));
    expect(r.statements).toBe(2);
  });
});
