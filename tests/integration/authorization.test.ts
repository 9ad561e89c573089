import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignJWT } from 'jose';
import { createTestApp, TEST_JWT_SECRET, type TestApp } from '../helpers/test-app.js';
import { secretKey } from '../../src/modules/auth/auth.js';

let t: TestApp;
let admin: string;
let user2: string;
/** A payment of user 3, which user 2 must never see. */
let othersPaymentId: string;
let othersStripeId: string;
let ownPaymentId: string;

beforeAll(async () => {
  t = await createTestApp({ seed: { users: 4, paymentsPerUser: 5 } });
  admin = await t.adminToken();
  user2 = await t.userToken(2);
  const [other] = await t.sql<{ id: number; stripe_payment_id: string }>('select id, stripe_payment_id from payments where user_id = 3 limit 1');
  const [own] = await t.sql<{ id: number }>('select id from payments where user_id = 2 limit 1');
  othersPaymentId = String(other!.id);
  othersStripeId = other!.stripe_payment_id;
  ownPaymentId = String(own!.id);
});
afterAll(async () => t?.close());

const code = (r: { body: { errors?: { extensions?: Record<string, any> }[] } }) => r.body.errors?.[0]?.extensions?.code;

describe('without a token', () => {
  it.each([
    '{ me { id } }',
    '{ user(id: "2") { id } }',
    '{ userByEmail(email: "user2@paygraph.dev") { id } }',
    '{ users { nodes { id } } }',
    '{ payment(id: "1") { id } }',
    '{ paymentByStripeId(stripePaymentId: "pi_demo_2_1") { id } }',
    '{ payments { nodes { id } } }',
    '{ paymentHistory { nodes { id } } }',
  ])('%s is UNAUTHENTICATED and runs no SQL', async (query) => {
    const r = await t.gql(query);
    expect(code(r)).toBe('UNAUTHENTICATED');
    expect(r.statements).toBe(0);
  });
});

describe('a bad token fails the whole request with 401', () => {
  const key = secretKey(TEST_JWT_SECRET);
  const cases: [string, () => Promise<string>][] = [
    ['garbled', async () => 'not.a.jwt'],
    ['expired', async () => new SignJWT({ role: 'USER' }).setProtectedHeader({ alg: 'HS256' }).setSubject('2').setExpirationTime(Math.floor(Date.now() / 1000) - 60).sign(key)],
    ['signed with another secret', async () => new SignJWT({ role: 'ADMIN' }).setProtectedHeader({ alg: 'HS256' }).setSubject('1').setExpirationTime('1h').sign(secretKey('another-secret-that-is-32-characters-or-more'))],
    ['without exp', async () => new SignJWT({ role: 'ADMIN' }).setProtectedHeader({ alg: 'HS256' }).setSubject('1').sign(key)],
    ['without a valid role', async () => new SignJWT({ role: 'ROOT' }).setProtectedHeader({ alg: 'HS256' }).setSubject('1').setExpirationTime('1h').sign(key)],
    ['with a non-numeric sub', async () => new SignJWT({ role: 'ADMIN' }).setProtectedHeader({ alg: 'HS256' }).setSubject('admin').setExpirationTime('1h').sign(key)],
  ];
  it.each(cases)('%s', async (_name, make) => {
    const r = await t.gql('{ me { id } }', { token: await make() });
    expect(r.status).toBe(401);
    expect(code(r)).toBe('UNAUTHENTICATED');
  });

  it('a header that is not "Bearer <token>"', async () => {
    const r = await t.gql('{ me { id } }', { headers: { authorization: 'Basic dXNlcjpwYXNz' } });
    expect(r.status).toBe(401);
    expect(code(r)).toBe('UNAUTHENTICATED');
  });
});

describe('a USER', () => {
  it('resolves the viewer with at most 1 statement, and `me` reuses that row', async () => {
    const viewer = await t.userToken(3);
    const me = await t.gql('{ me { id email role } }', { token: viewer });
    expect(me.body.data!.me).toEqual({ id: '3', email: 'user3@paygraph.dev', role: 'USER' });
    expect(me.statements).toBe(1);
    const again = await t.gql('{ __typename }', { token: viewer });
    expect(again.body.data).toEqual({ __typename: 'Query' });
    expect(again.statements).toBe(0);
  });

  it('sees themself by id and by email', async () => {
    expect((await t.gql('{ user(id: "2") { email } }', { token: user2 })).body.data!.user.email).toBe('user2@paygraph.dev');
    expect((await t.gql('{ userByEmail(email: "USER2@paygraph.dev") { id } }', { token: user2 })).body.data!.userByEmail.id).toBe('2');
  });

  it.each([
    ['a user by id', (id: string) => `{ user(id: "${id}") { id } }`, '3', '999'],
    ['a user by email', (id: string) => `{ userByEmail(email: "${id}") { id } }`, 'user3@paygraph.dev', 'nobody@paygraph.dev'],
    ['a payment by id', (id: string) => `{ payment(id: "${id}") { id } }`, 'OTHERS_PAYMENT', '999999'],
  ])("gets for someone else's %s exactly the answer for one that does not exist", async (_what, query, others, missing) => {
    const theirs = await t.gql(query(others === 'OTHERS_PAYMENT' ? othersPaymentId : others), { token: user2 });
    const none = await t.gql(query(missing), { token: user2 });
    expect(code(theirs)).toBe('NOT_FOUND');
    // Same status, message, data and codes: nothing tells "exists, not yours" from "does not exist".
    const shape = (r: typeof theirs) => ({ status: r.status, data: r.body.data, errors: r.body.errors?.map(({ message, path, extensions }) => ({ message, path, code: extensions?.code })) });
    expect(shape(theirs)).toEqual(shape(none));
  });

  it("gets NOT_FOUND for another user's payment, by id and by Stripe id", async () => {
    for (const query of [`{ payment(id: "${othersPaymentId}") { amount } }`, `{ paymentByStripeId(stripePaymentId: "${othersStripeId}") { amount } }`]) {
      const r = await t.gql(query, { token: user2 });
      expect(code(r)).toBe('NOT_FOUND');
      expect(r.body.data).toEqual({ [query.includes('Stripe') ? 'paymentByStripeId' : 'payment']: null });
    }
  });

  it('is FORBIDDEN the admin lists', async () => {
    expect(code(await t.gql('{ users { nodes { id } } }', { token: user2 }))).toBe('FORBIDDEN');
    expect(code(await t.gql('{ payments(userId: "2") { nodes { id } } }', { token: user2 }))).toBe('FORBIDDEN');
  });

  it('sees only their own payments in paymentHistory', async () => {
    const r = await t.gql('{ paymentHistory(first: 100) { totalCount nodes { user { id } } } }', { token: user2 });
    expect(r.body.data!.paymentHistory.totalCount).toBe(5);
    expect(new Set(r.body.data!.paymentHistory.nodes.map((n: any) => n.user.id))).toEqual(new Set(['2']));
  });

  it('stays within their own data along nested paths', async () => {
    const r = await t.gql(
      `{ payment(id: "${ownPaymentId}") { user { id payments(first: 100) { nodes { user { id payments(first: 1) { nodes { id } } } } } } } }`,
      { token: user2 },
    );
    expect(r.body.errors).toBeUndefined();
    const ids = new Set<string>();
    JSON.stringify(r.body.data, (k, v) => (k === 'user' && v?.id ? (ids.add(v.id), v) : v));
    expect(ids).toEqual(new Set(['2']));
  });
});

describe('an ADMIN', () => {
  it('sees every user and payment', async () => {
    expect((await t.gql(`{ payment(id: "${othersPaymentId}") { user { id } } }`, { token: admin })).body.data!.payment.user.id).toBe('3');
    expect((await t.gql('{ users { totalCount } }', { token: admin })).body.data!.users.totalCount).toBe(4);
  });

  it('gets null, not an error, for ids that do not exist', async () => {
    const r = await t.gql('{ user(id: "999") { id } payment(id: "999999") { id } userByEmail(email: "x@y.z") { id } paymentByStripeId(stripePaymentId: "pi_none") { id } }', { token: admin });
    expect(r.body.errors).toBeUndefined();
    expect(r.body.data).toEqual({ user: null, payment: null, userByEmail: null, paymentByStripeId: null });
  });

  it.each(['abc', '0', '-1', '1.5', '99999999999'])('gets BAD_USER_INPUT for the id %j', async (id) => {
    const r = await t.gql('query($id: ID!) { user(id: $id) { id } }', { token: admin, variables: { id } });
    expect(code(r)).toBe('BAD_USER_INPUT');
  });
});

describe('HTTP status', () => {
  it('stays 200 when a field fails and others succeed, with the partial data', async () => {
    const r = await t.gql('{ me { id } user(id: "3") { id } }', { token: user2 });
    expect(r.status).toBe(200);
    expect(r.body.data).toEqual({ me: { id: '2' }, user: null });
    expect(code(r)).toBe('NOT_FOUND');
  });
});

describe('request ids', () => {
  it("makes every request's id itself, and echoes a sane client x-request-id beside it as x-client-request-id", async () => {
    const mine = await t.gql('{ __typename }', { headers: { 'x-request-id': 'client-abc-123' } });
    expect(mine.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(mine.headers['x-client-request-id']).toBe('client-abc-123');
    const made = await t.gql('{ __typename }');
    expect(made.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(made.headers['x-client-request-id']).toBeUndefined();
    const refused = await t.gql('{ __typename }', { headers: { 'x-request-id': 'bad id with spaces' } });
    expect(refused.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(refused.headers['x-client-request-id']).toBeUndefined();
  });
});
