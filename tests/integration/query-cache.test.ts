import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/test-app.js';
import { createApp, type App } from '../../src/app.js';
import { SQL_STATS_KEY, SqlStats } from '../../src/core/sql-stats.js';
import { bindQueryCache, QueryCache } from '../../src/core/cache/index.js';
import { Payment } from '../../src/modules/payment/payment.entity.js';

const redisUrl = inject('redisUrl');
const STORES = [
  { store: 'memory', env: {} as Record<string, string> },
  { store: 'Redis', env: redisUrl ? { REDIS_URL: redisUrl } : null },
];

/**
 * The query cache as clients see it: repeated reads cost no SQL, writes are never followed by a
 * stale read (on one instance, and across two instances sharing Redis), authorization still applies
 * to cached data, and cold misses are loaded once however many requests ask at the same moment.
 */
describe.each(STORES)('query cache on $store', ({ env }) => {
  let t: TestApp;
  let admin: string;
  let user2: string;
  const namespace = `qc${randomBytes(4).toString('hex')}`;

  beforeAll(async () => {
    if (!env) return;
    // The query cache itself: the response cache in front of it would answer the repeats.
    t = await createTestApp({ seed: { users: 5, paymentsPerUser: 6 }, env: { ...env, CACHE_ENABLED: 'true', RESPONSE_CACHE_ENABLED: 'false', CACHE_NAMESPACE: namespace } });
    admin = await t.adminToken();
    user2 = await t.userToken(2);
    // Each viewer's state is cached by their first request (1 statement): warm both, so the counts
    // below are the queries' own.
    for (const token of [admin, user2]) await t.gql('{ __typename }', { token });
  });
  afterAll(async () => t?.close());

  // CI always has Redis (global setup fails without it); only a bare dev machine skips this variant.
  const run = it.skipIf(!env);

  run('serves a repeated user(id) with 0 statements, and says so in extensions.cache', async () => {
    const q = '{ user(id: "3") { email createdAt } }';
    const cold = await t.gql(q, { token: admin });
    const warm = await t.gql(q, { token: admin });
    expect(cold.statements).toBe(1);
    expect(warm.statements).toBe(0);
    expect(warm.body.data).toEqual(cold.body.data);
    expect(cold.body.extensions!.cache).toMatchObject({ enabled: true, misses: 1, sets: 1, hits: 0 });
    expect(warm.body.extensions!.cache).toMatchObject({ enabled: true, misses: 0, sets: 0, hits: 1 });
  });

  run('serves payment(id) with its user, paymentByStripeId, paymentCount and paymentStats from the cache when warm', async () => {
    const queries = [
      '{ payment(id: "8") { amount createdAt user { email } } }',
      '{ paymentByStripeId(stripePaymentId: "pi_demo_4_2") { amount user { id } } }',
      '{ users(first: 5) { nodes { paymentCount(status: COMPLETED) } } }',
      '{ user(id: "4") { paymentStats { status currency count totalAmount } } }',
    ];
    for (const q of queries) {
      const cold = await t.gql(q, { token: admin });
      // A payment's user is cached under its own tag, by the first request that has to load it (the
      // cold one gets the user from the join), so the payment queries are fully warm on their third run.
      await t.gql(q, { token: admin });
      const warm = await t.gql(q, { token: admin });
      expect(cold.body.errors).toBeUndefined();
      expect(warm.body.data).toEqual(cold.body.data);
      expect(cold.statements).toBeGreaterThan(0);
      // users(first) is cached too, under the `users` tag that every user write bumps.
      expect(warm.statements).toBe(0);
    }
  });

  run('paymentStats are right: counts and sums per status and currency match SQL', async () => {
    const r = await t.gql('{ user(id: "2") { paymentStats { status currency count totalAmount } } }', { token: admin });
    const truth = await t.sql<{ status: string; currency: string; count: number; total: string }>(
      `select status, currency, count(*)::int as count, sum(amount)::text as total from payments where user_id = 2 group by status, currency order by status, currency`,
    );
    expect(r.body.data!.user.paymentStats).toEqual(truth.map((x) => ({ status: x.status, currency: x.currency, count: x.count, totalAmount: Number(x.total) })));
  });

  run('never serves a stale user after updateUser on the same instance', async () => {
    const read = () => t.gql('{ user(id: "5") { name } }', { token: admin });
    await read();
    expect((await read()).statements).toBe(0);
    const update = await t.gql('mutation { updateUser(id: "5", input: { name: "Fresh Name" }) { name } }', { token: admin });
    expect(update.body.data!.updateUser.name).toBe('Fresh Name');
    expect(update.body.extensions!.cache.enabled).toBe(false);
    const after = await read();
    expect(after.body.data!.user.name).toBe('Fresh Name');
    expect(after.statements).toBe(1);
  });

  run('re-reads what a client marks Cache-Control: no-cache', async () => {
    const q = '{ user(id: "2") { email } }';
    await t.gql(q, { token: admin });
    const fresh = await t.gql(q, { token: admin, headers: { 'cache-control': 'no-cache' } });
    // The viewer's own row is read fresh too, then the user's.
    expect(fresh.statements).toBe(2);
    expect(fresh.body.extensions!.cache.enabled).toBe(false);
  });

  run('checks authorization on cached data: a warm payment of user 3 is still NOT_FOUND for user 2', async () => {
    const [{ id }] = (await t.sql<{ id: number }>('select id from payments where user_id = 3 order by id limit 1')) as [{ id: number }];
    await t.gql(`{ payment(id: "${id}") { amount } }`, { token: admin });
    const r = await t.gql(`{ payment(id: "${id}") { amount } }`, { token: user2 });
    expect(r.body.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
    expect(r.statements).toBe(0);
    expect(r.body.data).toEqual({ payment: null });
  });

  run('loads a cold key once for 50 concurrent identical requests (single flight)', async () => {
    const q = '{ user(id: "4") { paymentStats { count } } }';
    await t.app.cache!.invalidate(['user:4', 'payments:user:4']);
    const results = await Promise.all(Array.from({ length: 50 }, () => t.gql(q, { token: admin })));
    for (const r of results) expect(r.body.errors).toBeUndefined();
    const statements = results.reduce((sum, r) => sum + r.statements, 0);
    // One statement for user(4) and one for its stats, across all 50 requests.
    expect(statements).toBe(2);
  });

  run('caches a decorated repository method (countUserPayments) through the request scope', async () => {
    const count = async () => {
      const stats = new SqlStats();
      const em = t.app.orm.em.fork({ loggerContext: { [SQL_STATS_KEY]: stats } });
      bindQueryCache(em, new QueryCache(t.app.cache, { enabled: true }));
      const n = await em.getRepository(Payment).countUserPayments(3);
      return { n, statements: stats.statements };
    };
    await t.app.cache!.invalidate(['payments:user:3']);
    expect(await count()).toEqual({ n: 6, statements: 1 });
    expect(await count()).toEqual({ n: 6, statements: 0 });
    await t.app.cache!.invalidate(['payments:user:3']);
    expect(await count()).toEqual({ n: 6, statements: 1 });
  });

});

// A memory store belongs to one instance by definition: sharing entries and invalidations is Redis's.
describe.skipIf(!redisUrl)('two app instances sharing one Redis', () => {
  let t: TestApp;
  let admin: string;

  beforeAll(async () => {
    t = await createTestApp({
      seed: { users: 5, paymentsPerUser: 6 },
      env: { REDIS_URL: redisUrl, CACHE_ENABLED: 'true', CACHE_NAMESPACE: `qc2${randomBytes(4).toString('hex')}` },
    });
    admin = await t.adminToken();
  });
  afterAll(async () => t?.close());

  it('serves a fresh read after a write made on the other instance', async () => {
    const other: App = await createApp(t.config);
    try {
      const q = '{ user(id: "3") { name } }';
      await t.gql(q, { token: admin });
      const warm = await t.gql(q, { token: admin });
      expect(warm.statements).toBe(0);
      const res = await other.fastify.inject({
        method: 'POST',
        url: '/graphql',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${admin}` },
        payload: JSON.stringify({ query: 'mutation { updateUser(id: "3", input: { name: "Changed Elsewhere" }) { name } }' }),
      });
      expect(res.json().data.updateUser.name).toBe('Changed Elsewhere');
      const after = await t.gql(q, { token: admin });
      expect(after.body.data!.user.name).toBe('Changed Elsewhere');
      expect(after.statements).toBe(1);
      // And the other instance reads the first instance's fresh entry without SQL.
      const fromOther = await other.fastify.inject({
        method: 'POST',
        url: '/graphql',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${admin}` },
        payload: JSON.stringify({ query: q }),
      });
      expect(fromOther.json().data.user.name).toBe('Changed Elsewhere');
      expect(fromOther.json().extensions.sql.statements).toBe(0);
    } finally {
      await other.close();
    }
  });
});

describe('with CACHE_ENABLED=false', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp({ seed: { users: 2, paymentsPerUser: 2 }, env: { CACHE_ENABLED: 'false' } });
  });
  afterAll(async () => t?.close());

  it('every read goes to PostgreSQL', async () => {
    const q = '{ user(id: "2") { email paymentCount } }';
    const token = await t.adminToken();
    const a = await t.gql(q, { token });
    const b = await t.gql(q, { token });
    // The first also reads the viewer's row: the viewer's state is cached whatever CACHE_ENABLED says
    // (query results are what it turns off), and every write to a user bumps it everywhere.
    expect([a.statements, b.statements]).toEqual([3, 2]);
    expect(a.body.extensions!.cache.enabled).toBe(false);
  });
});
