import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type GqlResult, type TestApp } from '../helpers/test-app.js';
import { encodeUserCursor } from '../../src/core/pagination.js';
import { createApp } from '../../src/app.js';

let t: TestApp;
let admin: string;

beforeAll(async () => {
  t = await createTestApp({ seed: { users: 12, paymentsPerUser: 20 } });
  admin = await t.adminToken();
});
afterAll(async () => t?.close());

/** Ground truth from SQL: ids of a user's payments, newest first. */
async function paymentIdsOf(userId: number, status?: string): Promise<string[]> {
  const rows = await t.sql<{ id: number }>(
    `select id from payments where user_id = ? ${status ? 'and status = ?' : ''} order by created_at desc, id desc`,
    status ? [userId, status] : [userId],
  );
  return rows.map((r) => String(r.id));
}

const PAGE = `query Page($id: ID!, $first: Int, $after: String, $status: PaymentStatus) {
  user(id: $id) { payments(first: $first, after: $after, status: $status) {
    totalCount edges { cursor node { id status } } pageInfo { hasNextPage endCursor } } } }`;

describe('keyset pagination of a user\'s payments', () => {
  it('walks every page newest first with no gap or repeat', async () => {
    const seen: string[] = [];
    let after: string | null = null;
    for (let page = 0; page < 10; page++) {
      const r: GqlResult = await t.gql(PAGE, { token: admin, variables: { id: "3", first: 7, after } });
      const conn: any = r.body.data!.user.payments;
      seen.push(...conn.edges.map((e: any) => e.node.id));
      expect(conn.pageInfo.endCursor).toBe(conn.edges.at(-1)?.cursor ?? null);
      if (!conn.pageInfo.hasNextPage) break;
      after = conn.pageInfo.endCursor;
    }
    expect(seen).toEqual(await paymentIdsOf(3));
  });

  it('filters by status, and totalCount counts the filtered set', async () => {
    const r = await t.gql(PAGE, { token: admin, variables: { id: '4', first: 100, status: 'COMPLETED' } });
    const conn = r.body.data!.user.payments;
    const truth = await paymentIdsOf(4, 'COMPLETED');
    expect(conn.edges.map((e: any) => e.node.id)).toEqual(truth);
    expect(conn.totalCount).toBe(truth.length);
    expect(conn.pageInfo.hasNextPage).toBe(false);
  });

  it('keeps order across payments created in the same millisecond (id breaks the tie)', async () => {
    const [{ id: userId }] = (await t.sql<{ id: number }>(
      `insert into users (email, name) values ('ties@paygraph.dev', 'Ties') returning id`,
    )) as [{ id: number }];
    await t.sql(
      `insert into payments (user_id, amount, currency, created_at)
       select ?, 100 + g, 'usd', timestamptz '2026-03-01 00:00:00+00' from generate_series(1, 9) g`,
      [userId],
    );
    const seen: string[] = [];
    let after: string | null = null;
    do {
      const r: GqlResult = await t.gql(PAGE, { token: admin, variables: { id: String(userId), first: 2, after } });
      const conn: any = r.body.data!.user.payments;
      seen.push(...conn.edges.map((e: any) => e.node.id));
      after = conn.pageInfo.hasNextPage ? conn.pageInfo.endCursor : null;
    } while (after);
    expect(seen).toHaveLength(9);
    expect(seen).toEqual(await paymentIdsOf(userId));
  });

  it('serves different first/after/status per parent in the same two statements', async () => {
    const first = await t.gql(PAGE, { token: admin, variables: { id: '5', first: 3 } });
    const cursor = first.body.data!.user.payments.pageInfo.endCursor;
    const r = await t.gql(
      `query($after: String) {
        a: user(id: "5") { payments(first: 2, after: $after) { nodes { id } } }
        b: user(id: "6") { payments(first: 5, status: FAILED) { nodes { id status } } }
        c: user(id: "7") { payments(first: 1) { nodes { id } } }
      }`,
      { token: admin, variables: { after: cursor } },
    );
    expect(r.body.errors).toBeUndefined();
    const d = r.body.data!;
    expect(d.a.payments.nodes.map((n: any) => n.id)).toEqual((await paymentIdsOf(5)).slice(3, 5));
    expect(d.b.payments.nodes.map((n: any) => n.id)).toEqual((await paymentIdsOf(6, 'FAILED')).slice(0, 5));
    expect(d.c.payments.nodes.map((n: any) => n.id)).toEqual((await paymentIdsOf(7)).slice(0, 1));
    expect(r.statements).toBe(2);
  });

  it('limits each parent separately in a list', async () => {
    const r = await t.gql('{ users(first: 5) { nodes { id payments(first: 4) { nodes { id user { id } } } } } }', {
      token: admin,
    });
    for (const u of r.body.data!.users.nodes) {
      expect(u.payments.nodes.map((n: any) => n.id)).toEqual((await paymentIdsOf(Number(u.id))).slice(0, 4));
      for (const p of u.payments.nodes) expect(p.user.id).toBe(u.id);
    }
  });
});

describe('users and global payments', () => {
  it('pages users by id with a filter, and totalCount matches the filter', async () => {
    // An inactive user inside the first page (the seeder deactivates only ids divisible by 10).
    await t.sql('update users set is_active = false where id = 3');
    const r1 = await t.gql('{ users(first: 4, filter: { isActive: true }) { totalCount nodes { id isActive } pageInfo { hasNextPage endCursor } } }', { token: admin });
    await t.sql('update users set is_active = true where id = 3');
    const c1 = r1.body.data!.users;
    expect(c1.nodes).toEqual(['1', '2', '4', '5'].map((id) => ({ id, isActive: true })));
    const r2 = await t.gql(`{ users(first: 100, after: "${c1.pageInfo.endCursor}", filter: { isActive: true }) { nodes { id } pageInfo { hasNextPage } } }`, { token: admin });
    const rest = r2.body.data!.users.nodes.map((n: any) => n.id);
    const truth = (await t.sql<{ id: number }>('select id from users where is_active order by id')).map((r) => String(r.id));
    expect(truth).not.toContain('10');
    expect(truth).toContain('3');
    expect(rest).toEqual(truth.slice(truth.indexOf('5') + 1));
    expect(rest).not.toContain('10');
    // Counted while user 3 was inactive: every active user but that one.
    expect(c1.totalCount).toBe(truth.length - 1);
    expect(r2.body.data!.users.pageInfo.hasNextPage).toBe(false);
  });

  it('filters by role and by a case-insensitive email substring, with LIKE wildcards taken literally', async () => {
    const admins = await t.gql('{ users(filter: { role: ADMIN }) { nodes { email role } } }', { token: admin });
    expect(admins.body.data!.users.nodes).toEqual([{ email: 'admin@paygraph.dev', role: 'ADMIN' }]);
    const some = await t.gql('{ users(filter: { emailContains: "USER1" }) { nodes { email } } }', { token: admin });
    expect(some.body.data!.users.nodes.map((n: any) => n.email)).toEqual(['user10@paygraph.dev', 'user11@paygraph.dev', 'user12@paygraph.dev']);
    const wild = await t.gql('{ users(filter: { emailContains: "%" }) { nodes { email } } }', { token: admin });
    expect(wild.body.data!.users.nodes).toEqual([]);
  });

  it('lists payments globally newest first, filtered by status and user', async () => {
    const r = await t.gql('{ payments(first: 100, status: REFUNDED, userId: "8") { totalCount nodes { id status user { id } } } }', { token: admin });
    const conn = r.body.data!.payments;
    expect(conn.nodes.map((n: any) => n.id)).toEqual(await paymentIdsOf(8, 'REFUNDED'));
    expect(conn.totalCount).toBe(conn.nodes.length);
    for (const n of conn.nodes) expect(n.user.id).toBe('8');
  });
});

describe('bad paging arguments are BAD_USER_INPUT', () => {
  it.each([0, -1, 101, null])('first: %s', async (first) => {
    const r = await t.gql('query($f: Int) { users(first: $f) { nodes { id } } }', { token: admin, variables: { f: first } });
    expect(r.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(r.body.data).toBeNull();
    expect(r.statements).toBe(0);
  });

  it.each(['garbage', '', 'cDox', encodeUserCursor({ id: 3 })])('payments after: %j', async (after) => {
    const r = await t.gql('query($a: String) { paymentHistory(after: $a) { nodes { id } } }', {
      token: await t.userToken(2),
      variables: { a: after },
    });
    if (after === '') {
      // An empty cursor means "from the start", like none at all.
      expect(r.body.errors).toBeUndefined();
      return;
    }
    expect(r.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });
});

describe('what a page selects', () => {
  it('returns every Payment field correctly whichever fields and fragments a query asks for', async () => {
    const r = await t.gql(
      `{ user(id: "9") { payments(first: 3) {
          nodes { id ...money stripePaymentId }
          edges { node { description failureReason amountRefunded createdAt } } } } }
        fragment money on Payment { amount currency status }`,
      { token: admin },
    );
    const truth = await t.sql<Record<string, unknown>>(
      `select id::text as id, amount, currency, status, stripe_payment_id as "stripePaymentId", description, failure_reason as "failureReason",
              amount_refunded as "amountRefunded", to_char(created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as "createdAt"
       from payments where user_id = 9 order by created_at desc, id desc limit 3`,
    );
    const conn = r.body.data!.user.payments;
    expect(conn.nodes).toEqual(truth.map(({ id, amount, currency, status, stripePaymentId }) => ({ id, amount, currency, status, stripePaymentId })));
    expect(conn.edges.map((e: any) => e.node)).toEqual(
      truth.map(({ description, failureReason, amountRefunded, createdAt }) => ({ description, failureReason, amountRefunded, createdAt })),
    );
  });
});

describe('the executors', () => {
  it('graphql-js and graphql-jit give the same answers on the same data', async () => {
    // A second app on this test's database, with the reference executor.
    const reference = await createApp({ ...t.config, graphql: { ...t.config.graphql, executor: 'graphql-js' } });
    try {
      // Each app caches the viewer's state in its own memory store: warm both before counting.
      for (const send of [(q: string) => t.gql(q, { token: admin }), (q: string) => reference.fastify.inject({ method: 'POST', url: '/graphql', headers: { 'content-type': 'application/json', authorization: `Bearer ${admin}` }, payload: JSON.stringify({ query: q }) })]) {
        await send('{ __typename }');
      }
      for (const query of [
        '{ users(first: 5) { totalCount nodes { id email createdAt paymentCount(status: COMPLETED) payments(first: 3) { totalCount nodes { id amount status createdAt user { email } } pageInfo { hasNextPage endCursor } } } } }',
        '{ payments(first: 4, status: FAILED) { edges { cursor node { id currency user { id role } } } } }',
        '{ user(id: "3") { paymentStats { status currency count totalAmount } } users(first: 101) { nodes { id } } }',
      ]) {
        const jit = await t.gql(query, { token: admin });
        const res = await reference.fastify.inject({
          method: 'POST',
          url: '/graphql',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${admin}` },
          payload: JSON.stringify({ query }),
        });
        const js = res.json();
        expect(jit.body.data).toEqual(js.data);
        expect(jit.body.errors?.map((e) => e.extensions?.code)).toEqual(js.errors?.map((e: any) => e.extensions?.code));
        // With an error that nulls the whole result, graphql-js may answer before batched loads run.
        if (!jit.body.errors) expect(jit.statements).toBe(js.extensions.sql.statements);
      }
    } finally {
      await reference.close();
    }
  });
});

describe('a user\'s page query fetches what the selection needs, and no more', () => {
  const pageStatement = (queries: string[]) => {
    const found = queries.filter((q) => q.includes('cross join lateral'));
    expect(found).toHaveLength(1);
    return found[0]!;
  };
  const firstIds = async (userId: number, n: number) => (await paymentIdsOf(userId)).slice(0, n);

  it('nodes only: no cursor column, no user column, exactly `first` rows per user', async () => {
    const r = await t.gql('{ users(first: 3) { nodes { payments(first: 2) { nodes { id amount } } } } }', { token: admin });
    const sql = pageStatement(r.queries);
    expect(sql).not.toContain('"createdAt"');
    expect(sql).not.toContain('"userId"');
    const nodes = r.body.data!.users.nodes.map((u: any) => u.payments.nodes.map((p: any) => p.id));
    expect(nodes).toEqual([await firstIds(1, 2), await firstIds(2, 2), await firstIds(3, 2)]);
  });

  it('pageInfo.hasNextPage, also through a fragment, adds the one extra row and answers right', async () => {
    const r = await t.gql(
      `{ users(first: 2) { nodes { payments(first: 20) { ...more nodes { id } } } } }
       fragment more on PaymentConnection { pageInfo { hasNextPage } }`,
      { token: admin },
    );
    expect(r.body.data!.users.nodes.map((u: any) => u.payments.pageInfo.hasNextPage)).toEqual([false, false]);
    const short = await t.gql('{ user(id: "4") { payments(first: 19) { pageInfo { hasNextPage } } } }', { token: admin });
    expect(short.body.data!.user.payments.pageInfo.hasNextPage).toBe(true);
  });

  it('a cursor (endCursor or edges.cursor) adds createdAt, and the cursor continues the walk', async () => {
    const r = await t.gql('{ user(id: "5") { payments(first: 3) { nodes { id } pageInfo { endCursor } } } }', { token: admin });
    const sql = pageStatement(r.queries);
    expect(sql).toContain('"createdAt"');
    const after = r.body.data!.user.payments.pageInfo.endCursor;
    const next = await t.gql('query($a: String) { user(id: "5") { payments(first: 3, after: $a) { edges { cursor node { id } } } } }', {
      token: admin,
      variables: { a: after },
    });
    expect(pageStatement(next.queries)).toContain('"createdAt"');
    expect(next.body.data!.user.payments.edges.map((e: any) => e.node.id)).toEqual((await paymentIdsOf(5)).slice(3, 6));
  });

  it('Payment.user, also through an inline fragment, adds the user column', async () => {
    const r = await t.gql('{ users(first: 2) { nodes { email payments(first: 1) { nodes { ... on Payment { user { email } } } } } } }', { token: admin });
    expect(pageStatement(r.queries)).toContain('"userId"');
    for (const u of r.body.data!.users.nodes) expect(u.payments.nodes).toEqual([{ user: { email: u.email } }]);
  });
});

describe('the jit executor compiles only what comes back', () => {
  it('runs a document seen once with graphql-js, compiles it on its second run, with the same answers', async () => {
    const sizes = t.app.executorSizes!;
    const token = admin;
    // Every request executed (with production's caches on, a response-cache hit would not run the executor).
    const headers = { 'cache-control': 'no-cache' };
    const doc = `{ payment(id: "${(await t.sql<{ id: number }>('select id from payments order by id limit 1'))[0]!.id}") { amount status user { email } } }`;
    const before = sizes.compiled();
    const first = await t.gql(doc, { token, headers });
    expect(sizes.compiled()).toBe(before);
    const second = await t.gql(doc, { token, headers });
    expect(sizes.compiled()).toBe(before + 1);
    const third = await t.gql(doc, { token, headers });
    expect(sizes.compiled()).toBe(before + 1);
    expect(second.body.data).toEqual(first.body.data);
    expect(third.body.data).toEqual(first.body.data);
    // A stream of distinct documents (an id written into each) compiles none of them.
    const ids = (await t.sql<{ id: number }>('select id from payments order by id limit 30')).map((r) => r.id);
    const compiledBefore = sizes.compiled();
    const storedBefore = t.app.documentStore.size;
    for (const id of ids) expect((await t.gql(`{ payment(id: "${id}") { id } }`, { token, headers })).body.data!.payment.id).toBe(String(id));
    expect(sizes.compiled()).toBe(compiledBefore);
    // Nor does Apollo keep their parsed documents: only what is seen twice is.
    expect(t.app.documentStore.size).toBe(storedBefore);
    await t.gql(`{ payment(id: "${ids[0]}") { id } }`, { token, headers });
    expect(t.app.documentStore.size).toBe(storedBefore + 1);
  });
});
