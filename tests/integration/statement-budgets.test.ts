import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/test-app.js';
import { NaivePaymentsResolver } from '../helpers/naive.resolver.js';

/**
 * The budgets of README's table, asserted with 10 users and with 1,000 users x 20 payments: the
 * count must not move with the data. Counts come from the server's own per-request attribution
 * (extensions.sql), and the harness fails any request during which an unattributed statement ran.
 */
const SIZES = [
  { users: 10, paymentsPerUser: 20 },
  { users: 1000, paymentsPerUser: 20 },
];

describe.each(SIZES)('statement budgets with $users users x $paymentsPerUser payments', (size) => {
  let t: TestApp;
  let admin: string;
  let user2: string;

  beforeAll(async () => {
    t = await createTestApp({ seed: size, appOptions: { extraResolvers: [NaivePaymentsResolver] } });
    admin = await t.adminToken();
    user2 = await t.userToken(2);
  });
  afterAll(async () => t?.close());

  // First, because every later request of these viewers finds their state in the shared cache.
  it('resolving the viewer: 1 statement the first time (their row, checked active), then 0 from the shared cache', async () => {
    for (const token of [admin, user2]) {
      const cold = await t.gql('{ __typename }', { token });
      expect(cold.body.data).toEqual({ __typename: 'Query' });
      expect(cold.statements).toBe(1);
      expect(cold.queries[0]).toMatch(/from users u where u\.id = any/);
      const warm = await t.gql('{ __typename }', { token });
      expect(warm.statements).toBe(0);
    }
  });

  it('users(first:100) with payments(first:10) and each payment.user: 2 statements', async () => {
    const r = await t.gql(
      '{ users(first: 100) { nodes { id email payments(first: 10) { nodes { id amount status user { email } } } } } }',
      { token: admin },
    );
    expect(r.body.errors).toBeUndefined();
    const users = r.body.data!.users.nodes;
    expect(users).toHaveLength(Math.min(100, size.users));
    for (const u of users) {
      expect(u.payments.nodes).toHaveLength(10);
      for (const p of u.payments.nodes) expect(p.user.email).toBe(u.email);
    }
    expect(r.statements).toBe(2);
  });

  it('user(id) with payments(first:10): 2 statements', async () => {
    const r = await t.gql('{ user(id: "7") { email payments(first: 10) { nodes { amount } } } }', { token: admin });
    expect(r.body.data!.user.email).toBe('user7@paygraph.dev');
    expect(r.body.data!.user.payments.nodes).toHaveLength(10);
    expect(r.statements).toBe(2);
  });

  it('payment(id) with its user: 1 statement', async () => {
    const r = await t.gql('{ payment(id: "25") { amount user { email } } }', { token: admin });
    expect(r.body.data!.payment.user.email).toBe('user2@paygraph.dev');
    expect(r.statements).toBe(1);
  });

  it('paymentHistory(first:20) with each payment.user: 1 statement', async () => {
    const r = await t.gql('{ paymentHistory(first: 20) { nodes { amount user { email } } } }', { token: user2 });
    expect(r.body.data!.paymentHistory.nodes).toHaveLength(20);
    expect(new Set(r.body.data!.paymentHistory.nodes.map((n: any) => n.user.email))).toEqual(new Set(['user2@paygraph.dev']));
    expect(r.statements).toBe(1);
  });

  it('users(first:50) with paymentCount(status: COMPLETED): 2 statements', async () => {
    const r = await t.gql('{ users(first: 50) { nodes { id paymentCount(status: COMPLETED) } } }', { token: admin });
    const [truth] = await t.sql<{ count: number }>(
      `select count(*)::int as count from payments where user_id = 3 and status = 'COMPLETED'`,
    );
    expect(r.body.data!.users.nodes.find((n: any) => n.id === '3').paymentCount).toBe(truth!.count);
    expect(r.statements).toBe(2);
  });

  it('payments(status: COMPLETED, first:50) with user and the user\'s payments(first:3): 2 statements (budget 3)', async () => {
    const r = await t.gql(
      '{ payments(status: COMPLETED, first: 50) { nodes { status user { email payments(first: 3) { nodes { id } } } } } }',
      { token: admin },
    );
    const nodes = r.body.data!.payments.nodes;
    expect(nodes.length).toBeGreaterThan(0);
    for (const n of nodes) {
      expect(n.status).toBe('COMPLETED');
      expect(n.user.payments.nodes).toHaveLength(3);
    }
    expect(r.statements).toBeLessThanOrEqual(3);
    expect(r.statements).toBe(2);
  });

  it('each selected totalCount adds exactly one statement, nested ones included', async () => {
    const base = '{ users(first: 100) { %TOP% nodes { payments(first: 10) { %NESTED% nodes { id } } } } }';
    const q = (top: boolean, nested: boolean) =>
      base.replace('%TOP%', top ? 'totalCount' : '').replace('%NESTED%', nested ? 'totalCount' : '');
    const none = await t.gql(q(false, false), { token: admin });
    const top = await t.gql(q(true, false), { token: admin });
    const nested = await t.gql(q(false, true), { token: admin });
    const both = await t.gql(q(true, true), { token: admin });
    expect([none.statements, top.statements, nested.statements, both.statements]).toEqual([2, 3, 3, 4]);
    expect(top.body.data!.users.totalCount).toBe(size.users);
    for (const u of nested.body.data!.users.nodes) expect(u.payments.totalCount).toBe(size.paymentsPerUser);

    const history = await t.gql('{ paymentHistory(first: 5) { totalCount nodes { id } } }', { token: user2 });
    expect(history.body.data!.paymentHistory.totalCount).toBe(size.paymentsPerUser);
    expect(history.statements).toBe(2);
    const global = await t.gql('{ payments(first: 5) { totalCount nodes { id } } }', { token: admin });
    expect(global.body.data!.payments.totalCount).toBe(size.users * size.paymentsPerUser);
    expect(global.statements).toBe(2);
  });

  it('negative control: a naive per-user resolver costs 1 + N statements, the counter sees it, and the N+1 detector fails the request', async () => {
    const n = Math.min(10, size.users);
    const r = await t.gql(`{ users(first: ${n}) { nodes { id naivePayments { id } } } }`, { token: admin });
    expect(r.statements).toBe(1 + n);
    expect(r.status).toBe(500);
    expect(r.body.data).toBeNull();
    expect(r.body.errors![0]!.extensions).toMatchObject({
      code: 'N_PLUS_ONE_DETECTED',
      repeated: [{ count: n, path: 'users.nodes.*.naivePayments' }],
    });
    expect(r.body.errors![0]!.extensions!.repeated[0].shape).toMatch(/^select .* from "payments" as "p0" where "p0"."user_id" = \? order by/);
  });
});
