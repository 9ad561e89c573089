import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/test-app.js';
import { createApp, type App } from '../../src/app.js';

const redisUrl = inject('redisUrl');

/**
 * Revocation that takes effect at once: a token is checked against its user as the user is now, on
 * every request, through the shared cache (0 statements when warm, 1 when cold), so deactivating,
 * deleting or changing the role of a user is seen by the next request on any instance.
 */
// CI always has Redis (global setup fails without it); only a bare dev machine skips this.
describe.skipIf(!redisUrl)('revocation across two instances sharing Redis', () => {
  let t: TestApp;
  let b: App;
  let admin: string;
  beforeAll(async () => {
    t = await createTestApp({
      seed: { users: 6, paymentsPerUser: 1 },
      env: { REDIS_URL: redisUrl, CACHE_ENABLED: 'true', CACHE_NAMESPACE: `rev${randomBytes(4).toString('hex')}` },
    });
    b = await createApp(t.config);
    admin = await t.adminToken();
  });
  afterAll(async () => {
    await b?.close();
    await t?.close();
  });

  /** A request to instance B. */
  async function onB(query: string, token: string) {
    const res = await b.fastify.inject({ method: 'POST', url: '/graphql', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, payload: JSON.stringify({ query }) });
    const body = res.json();
    return { status: res.statusCode, body, statements: body.extensions?.sql?.statements as number };
  }
  const update = (id: number, input: string) => t.gql(`mutation { updateUser(id: "${id}", input: { ${input} }) { id } }`, { token: admin });

  it('costs 1 statement for a cold viewer and 0 once warm, on either instance', async () => {
    const token = await t.userToken(2);
    expect((await onB('{ __typename }', token)).statements).toBe(1);
    expect((await onB('{ __typename }', token)).statements).toBe(0);
    // Instance A finds the viewer's row in Redis, written by B.
    expect((await t.gql('{ __typename }', { token })).statements).toBe(0);
  });

  it("refuses a deactivated user's token on the next request, on the other instance; reactivated, it works again", async () => {
    const token = await t.userToken(3);
    expect((await onB('{ me { id } }', token)).body.data).toEqual({ me: { id: '3' } });
    expect((await onB('{ __typename }', token)).statements).toBe(0); // warm on B

    expect((await update(3, 'isActive: false')).body.errors).toBeUndefined();
    const refused = await onB('{ me { id } }', token);
    expect(refused.status).toBe(401);
    expect(refused.body.errors[0]).toMatchObject({ message: expect.stringMatching(/deactivated or deleted/), extensions: { code: 'UNAUTHENTICATED' } });
    expect(refused.body.data).toBeUndefined();

    expect((await update(3, 'isActive: true')).body.errors).toBeUndefined();
    expect((await onB('{ me { id } }', token)).body.data).toEqual({ me: { id: '3' } });
  });

  it('applies a role change on the next request, with the token the user already has', async () => {
    const token = await t.userToken(4); // says USER
    expect((await onB('{ users(first: 1) { nodes { id } } }', token)).body.errors[0].extensions.code).toBe('FORBIDDEN');

    expect((await update(4, 'role: ADMIN')).body.errors).toBeUndefined();
    const promoted = await onB('{ users(first: 1) { nodes { id } } }', token);
    expect(promoted.body.errors).toBeUndefined();
    expect(promoted.body.data.users.nodes).toEqual([{ id: '1' }]);

    expect((await update(4, 'role: USER')).body.errors).toBeUndefined();
    expect((await onB('{ users(first: 1) { nodes { id } } }', token)).body.errors[0].extensions.code).toBe('FORBIDDEN');
  });

  it("refuses a deleted user's token on both instances", async () => {
    const token = await t.userToken(5);
    expect((await onB('{ me { id } }', token)).status).toBe(200);
    expect((await t.gql('{ me { id } }', { token })).status).toBe(200);
    expect((await t.gql('mutation { deleteUser(id: "5") }', { token: admin })).body.data).toEqual({ deleteUser: true });
    expect((await onB('{ me { id } }', token)).status).toBe(401);
    expect((await t.gql('{ me { id } }', { token })).status).toBe(401);
  });
});

describe('revocation on one instance with the in-process cache, query caching off', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp({ seed: { users: 3, paymentsPerUser: 1 } });
  });
  afterAll(async () => t?.close());

  it("refuses a deactivated user's token at once even though their state was cached", async () => {
    const token = await t.userToken(2);
    expect((await t.gql('{ me { id } }', { token })).statements).toBe(1);
    expect((await t.gql('{ __typename }', { token })).statements).toBe(0);
    await t.gql('mutation { updateUser(id: "2", input: { isActive: false }) { id } }', { token: await t.adminToken() });
    const refused = await t.gql('{ __typename }', { token });
    expect(refused.status).toBe(401);
    expect(refused.body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  });
});
