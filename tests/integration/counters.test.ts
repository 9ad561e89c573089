import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/test-app.js';
import { signedEvent, stripeEnvFor, StripeDouble } from '../helpers/stripe-double.js';
import { createTestDatabase } from '../helpers/database.js';
import { migrate } from '../../src/db/orm.js';
import { migrationsList } from '../../src/db/migrations/index.js';
import pg from 'pg';

/**
 * The counters behind `paymentCount`, `paymentStats` and every `totalCount` (kept by triggers in the
 * transaction of each write: Migration20261201050000_counters) against a full count of the rows, after
 * a randomized mix of every kind of write the system makes: payments created, canceled and refunded
 * through the API, webhooks of every kind, reconciliation runs, users created, changed and deleted,
 * and plain SQL (bulk inserts, bulk updates, deletes) as an operator would run; one at a time, then
 * many at once.
 */
let stripe: StripeDouble;
let t: TestApp;
let admin: string;

/** A small deterministic generator, so a failing mix can be run again as it was. */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let x = Math.imul(s ^ (s >>> 15), 1 | s);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * SQL on a connection of its own (behind the app's back, as an operator's would be, and never counted
 * against a request running beside it); `?` placeholders.
 */
async function sql<T = Record<string, any>>(text: string, params: unknown[] = []): Promise<T[]> {
  let i = 0;
  const numbered = text.replace(/\?/g, () => `$${++i}`);
  for (let attempt = 1; ; attempt++) {
    try {
      return await t.db.query<T>(numbered, params);
    } catch (err) {
      // Two of these multi-row statements may lock the same payments in opposite orders (a plan by
      // index against one in table order): PostgreSQL cancels one, which changed nothing; an operator
      // runs it again. (The app's own writes never fail so: the test asserts it.)
      if ((err as { code?: string }).code !== '40P01' || attempt === 5) throw err;
      deadlocks++;
    }
  }
}
let deadlocks = 0;

const STATUSES = ['PENDING', 'REQUIRES_ACTION', 'PROCESSING', 'COMPLETED', 'FAILED', 'REFUNDED', 'CANCELED'];

beforeAll(async () => {
  stripe = await StripeDouble.start();
  t = await createTestApp({
    seed: { users: 12, paymentsPerUser: 5 },
    env: stripeEnvFor(stripe, { RECONCILE_INTERVAL_SECONDS: '0', RECONCILE_AFTER_SECONDS: '1', RECONCILE_MIN_CALL_INTERVAL_MS: '0', PAYMENT_EXPIRE_AFTER_SECONDS: '1' }),
  });
  admin = await t.adminToken();
});
afterAll(async () => {
  await t?.close();
  await stripe?.close();
});

/** The counters and totals against a full count of the rows, in the database `query` reaches. */
async function compareCounts(query: (text: string) => Promise<Record<string, any>[]>): Promise<Record<string, any>[]> {
  const perUser = await query(
    `select user_id, status, currency, count(*)::int as count, sum(amount)::bigint::text as total from payments group by 1, 2, 3 order by 1, 2, 3`,
  );
  const counters = await query(
    `select user_id, status, currency, count::int as count, total_amount::text as total from payment_counters where count <> 0 or total_amount <> 0 order by 1, 2, 3`,
  );
  expect(counters).toEqual(perUser);
  const byStatus = await query(`select status, count(*)::int as count from payments group by 1 order by 1`);
  expect(await query(`select status, sum(count)::int as count from payment_totals group by 1 having sum(count) <> 0 order by 1`)).toEqual(byStatus);
  const users = await query(`select is_active, role, deleted_at is not null as deleted, count(*)::int as count from users group by 1, 2, 3 order by 1, 2, 3`);
  expect(await query(`select is_active, role, deleted, sum(count)::int as count from user_totals group by 1, 2, 3 having sum(count) <> 0 order by 1, 2, 3`)).toEqual(users);
  return byStatus;
}

/** What the counters say, what a full count of the rows says, and what the API answers; all equal. */
async function compare(): Promise<void> {
  const byStatus = await compareCounts((text) => sql(text));

  // And what the API answers from them.
  const [{ n: all }] = await sql<{ n: number }>('select count(*)::int as n from payments');
  const api = await t.gql('{ payments(first: 1) { totalCount } users(first: 1) { totalCount } deleted: users(first: 1, filter: { deleted: true }) { totalCount } }', { token: admin });
  expect(api.body.errors, JSON.stringify(api.body.errors)).toBeUndefined();
  expect(api.body.data!.payments.totalCount).toBe(all);
  for (const s of STATUSES) {
    const one = await t.gql(`{ payments(first: 1, status: ${s}) { totalCount } }`, { token: admin });
    expect(one.body.data!.payments.totalCount, s).toBe(byStatus.find((r) => r.status === s)?.count ?? 0);
  }
  const [{ live, deleted }] = await sql<{ live: number; deleted: number }>('select count(*) filter (where deleted_at is null)::int as live, count(*) filter (where deleted_at is not null)::int as deleted from users');
  expect(api.body.data!.users.totalCount).toBe(live);
  expect(api.body.data!.deleted.totalCount).toBe(deleted);
  const user = (await sql<{ id: number }>('select id from users where deleted_at is null order by id desc limit 1'))[0]!.id;
  const one = await t.gql(`{ user(id: "${user}") { paymentCount completed: paymentCount(status: COMPLETED) paymentStats { status currency count totalAmount } payments(first: 1) { totalCount } } }`, { token: admin });
  const rows = await sql<{ status: string; currency: string; count: number; total: string }>(
    'select status, currency, count(*)::int as count, sum(amount)::text as total from payments where user_id = ? group by 1, 2 order by 1, 2',
    [user],
  );
  expect(one.body.data!.user).toEqual({
    paymentCount: rows.reduce((n, r) => n + r.count, 0),
    completed: rows.filter((r) => r.status === 'COMPLETED').reduce((n, r) => n + r.count, 0),
    paymentStats: rows.map((r) => ({ status: r.status, currency: r.currency, count: r.count, totalAmount: Number(r.total) })),
    payments: { totalCount: rows.reduce((n, r) => n + r.count, 0) },
  });
}

/** One write of a randomly chosen kind; a write that has not answered within 20 s fails, named. */
async function oneWrite(next: () => number, n: number): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  const described = { kind: 'choosing' };
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`write ${n} (${described.kind}) did not answer within 20 s`)), 20_000);
  });
  try {
    return await Promise.race([writeOnce(next, n, described), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function writeOnce(next: () => number, n: number, described: { kind: string }): Promise<string> {
  const pick = <T>(items: readonly T[]) => items[Math.floor(next() * items.length)]!;
  const all = await sql<{ id: number; live: boolean }>('select id, deleted_at is null and is_active as live from users where id > 1 order by id');
  // Users who may still act (a mix deletes and deactivates some), and any user for plain SQL.
  const users = all.filter((u) => u.live).map((u) => u.id);
  const anyUser = () => pick(all).id;
  const payments = await sql<{ id: number; user_id: number; stripe_payment_id: string | null; status: string; amount: number }>(
    'select id, user_id, stripe_payment_id, status, amount from payments order by id',
  );
  const payment = payments.length ? pick(payments) : null;
  const kind = pick(['create', 'create', 'webhook', 'webhook', 'refund', 'cancel', 'reconcile', 'user', 'sql'] as const);
  described.kind = kind;
  switch (kind) {
    case 'create': {
      if (users.length === 0) return 'create skipped';
      const userId = pick(users);
      const r = await t.gql('mutation($input: CreatePaymentInput!) { createPayment(input: $input) { payment { id } } }', {
        token: await t.userToken(userId),
        variables: { input: { amount: 100 + Math.floor(next() * 9000), currency: pick(['usd', 'eur']), idempotencyKey: `mix-key-${n}` } },
      });
      return `create ${r.body.errors?.[0]?.extensions?.code ?? 'ok'}`;
    }
    case 'webhook': {
      if (!payment?.stripe_payment_id) return 'webhook skipped';
      const type = pick(['payment_intent.succeeded', 'payment_intent.payment_failed', 'payment_intent.canceled', 'payment_intent.processing', 'payment_intent.requires_action', 'charge.refunded']);
      const object =
        type === 'charge.refunded'
          ? { id: `ch_${n}`, object: 'charge', payment_intent: payment.stripe_payment_id, amount_refunded: payment.amount, refunded: true }
          : { id: payment.stripe_payment_id, object: 'payment_intent', metadata: { paymentId: String(payment.id) } };
      const event = signedEvent(type, object);
      const res = await t.app.fastify.inject({ method: 'POST', url: '/webhooks/stripe', headers: { 'content-type': 'application/json', 'stripe-signature': event.signature }, payload: event.payload });
      return `webhook ${type} ${res.statusCode}`;
    }
    case 'refund': {
      if (!payment) return 'refund skipped';
      if (payment.stripe_payment_id && stripe.intents.has(payment.stripe_payment_id)) stripe.succeed(payment.stripe_payment_id);
      const r = await t.gql(`mutation { refundPayment(id: "${payment.id}", amount: ${Math.max(1, Math.floor(payment.amount / 2))}) { id } }`, { token: admin });
      return `refund ${r.body.errors?.[0]?.extensions?.code ?? 'ok'}`;
    }
    case 'cancel': {
      // Mostly a payment that can still be canceled, sometimes any (refused: nothing changes).
      const open = payments.filter((p) => p.status === 'PENDING' || p.status === 'REQUIRES_ACTION');
      const target = open.length && next() < 0.8 ? pick(open) : payment;
      if (!target) return 'cancel skipped';
      const r = await t.gql(`mutation { cancelPayment(id: "${target.id}") { id } }`, { token: admin });
      return `cancel ${r.body.errors?.[0]?.extensions?.code ?? 'ok'}`;
    }
    case 'reconcile': {
      // Stripe moved some intents without telling (lost webhooks), and time passed.
      for (const p of payments.filter((x) => x.stripe_payment_id && stripe.intents.has(x.stripe_payment_id))) {
        if (next() < 0.3) stripe.setIntentStatus(p.stripe_payment_id!, pick(['succeeded', 'canceled', 'processing', 'requires_payment_method']));
      }
      await sql("update payments set updated_at = updated_at - interval '1 hour', created_at = created_at - interval '1 hour', reconcile_due_at = null");
      const report = await t.app.reconciler!.runOnce();
      return `reconcile changed ${report.changed}`;
    }
    case 'user': {
      const action = pick(['create', 'update', 'delete'] as const);
      described.kind = `user ${action}`;
      if (action === 'create') {
        const r = await t.gql(`mutation { createUser(input: { email: "mix${n}@paygraph.dev", name: "Mix ${n}", isActive: ${next() < 0.7}, role: ${pick(['USER', 'ADMIN'])} }) { id } }`, { token: admin });
        return `user create ${r.body.errors?.[0]?.extensions?.code ?? 'ok'}`;
      }
      if (users.length === 0) return 'user skipped';
      const id = pick(users);
      if (action === 'update') {
        const r = await t.gql(`mutation { updateUser(id: "${id}", input: { isActive: ${next() < 0.8}, role: ${pick(['USER', 'ADMIN'])} }) { id } }`, { token: admin });
        return `user update ${r.body.errors?.[0]?.extensions?.code ?? 'ok'}`;
      }
      const r = await t.gql(`mutation { deleteUser(id: "${id}") }`, { token: admin });
      return `user delete ${r.body.errors?.[0]?.extensions?.code ?? 'ok'}`;
    }
    case 'sql': {
      const action = pick(['bulk insert', 'bulk update', 'delete', 'amount'] as const);
      described.kind = `sql ${action}`;
      const userId = anyUser();
      if (action === 'bulk insert') {
        await sql(
          `insert into payments (user_id, amount, currency, status) select ?, 100 + s, (array['usd','gbp'])[1 + s % 2], (array['COMPLETED','FAILED','PENDING'])[1 + s % 3] from generate_series(1, ?) s`,
          [userId, 1 + Math.floor(next() * 40)],
        );
      } else if (action === 'bulk update') {
        await sql(`update payments set status = ? where user_id = ? and id % 3 = ?`, [pick(STATUSES), userId, Math.floor(next() * 3)]);
      } else if (action === 'delete') {
        await sql('delete from stripe_events where payment_id in (select id from payments where user_id = ? and id % 4 = 0)', [userId]);
        await sql('delete from payments where user_id = ? and id % 4 = 0', [userId]);
      } else {
        await sql('update payments set amount = amount + 1, currency = ? where user_id = ? and id % 5 = 0', [pick(['usd', 'eur', 'gbp']), userId]);
      }
      return `sql ${action}`;
    }
  }
}

describe('counters', () => {
  it('equal a full count after 120 random writes of every kind, one at a time', { timeout: 120_000 }, async () => {
    await compare();
    const next = random(21);
    const kinds = new Set<string>();
    for (let n = 0; n < 120; n++) {
      kinds.add((await oneWrite(next, n)).split(' ').slice(0, 2).join(' '));
      if (n % 30 === 29) await compare();
    }
    // The mix reached every kind of write.
    for (const k of ['create ok', 'webhook payment_intent.succeeded', 'webhook charge.refunded', 'refund ok', 'cancel ok', 'reconcile changed', 'user create', 'user update', 'user delete', 'sql bulk', 'sql delete', 'sql amount']) {
      expect([...kinds].some((seen) => seen.startsWith(k)), `${k} in ${[...kinds].join(', ')}`).toBe(true);
    }
    await compare();
  });

  it('equal a full count after 200 random writes, 10 at a time (no write fails on the counters: no deadlock, no lost update)', { timeout: 120_000 }, async () => {
    const next = random(Number(process.env.COUNTERS_SEED ?? 77));
    const outcomes: string[] = [];
    for (let round = 0; round < 20; round++) {
      outcomes.push(...(await Promise.all(Array.from({ length: 10 }, (_, i) => oneWrite(next, 1000 + round * 10 + i)))));
    }
    expect(outcomes.filter((o) => /INTERNAL_SERVER_ERROR| 5\d\d$/.test(o))).toEqual([]);
    console.info(`[counters] 200 writes 10 at a time: ${outcomes.filter((o) => o.endsWith('ok')).length} API writes ok, ${deadlocks} plain-SQL statements run again after a deadlock between them`);
    await compare();
  });

  it('keep one user\'s counters exact under 40 concurrent createPayment of that user, and the global totals under writes through many connections', async () => {
    const [{ id }] = await sql<{ id: number }>("insert into users (email, name) values ('hot@paygraph.dev', 'Hot') returning id");
    const token = await t.userToken(id);
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        t.gql('mutation($input: CreatePaymentInput!) { createPayment(input: $input) { payment { id } } }', { token, variables: { input: { amount: 1000 + i, currency: 'usd', idempotencyKey: `hot-key-${i}` } } }),
      ),
    );
    expect(results.filter((r) => r.body.errors)).toEqual([]);
    const r = await t.gql(`{ user(id: "${id}") { paymentCount paymentStats { status count totalAmount } } }`, { token });
    expect(r.body.data!.user).toEqual({ paymentCount: 40, paymentStats: [{ status: 'PENDING', count: 40, totalAmount: 40 * 1000 + (39 * 40) / 2 }] });
    // The writes went through several backends, so several shards of the totals hold a part.
    expect((await sql<{ n: number }>("select count(*)::int as n from payment_totals where status = 'PENDING' and count <> 0"))[0]!.n).toBeGreaterThan(1);
    await compare();
  });

  it('empty with the table (TRUNCATE), then count again from zero', async () => {
    await sql('truncate payments, stripe_events, audit_log');
    expect(await sql('select count(*)::int as n from payment_counters')).toEqual([{ n: 0 }]);
    expect(await sql('select coalesce(sum(count), 0)::int as n from payment_totals')).toEqual([{ n: 0 }]);
    await sql("insert into payments (user_id, amount, currency, status) values (2, 500, 'usd', 'COMPLETED'), (2, 700, 'usd', 'COMPLETED')");
    await compare();
  });
});

describe('the counters migration on a table that already has payments', () => {
  it('fills the counters in batches of users while writers go on beside it; at the end they equal a full count', { timeout: 120_000 }, async () => {
    const db = await createTestDatabase();
    let stop = false;
    let writers: Promise<void>[] = [];
    try {
      const counters = migrationsList.findIndex((m) => m.name === 'Migration20261201050000_counters');
      await migrate({ databaseUrl: db.url, quiet: true }, undefined, { migrations: { migrationsList: migrationsList.slice(0, counters), snapshot: false, silent: true } });
      // Users in three of the fill's batches (2,000 user ids each), 40 payments each.
      await db.query(
        `insert into users (id, email, name) select s, format('fill%s@paygraph.dev', s), 'Fill' from (select generate_series(1, 30) union all select generate_series(2990, 3010) union all select generate_series(4500, 4520)) g(s)`,
      );
      await db.query(`select setval('users_id_seq', 5000)`);
      await db.query(
        `insert into payments (user_id, amount, currency, status)
         select u.id, 100 + k, (array['usd','eur'])[1 + k % 2], (array['COMPLETED','FAILED','PENDING','REFUNDED'])[1 + (u.id + k) % 4]
         from users u cross join generate_series(1, 40) k`,
      );
      const userIds = (await db.query<{ id: number }>('select id from users order by id')).map((u) => u.id);
      // Writers on connections of their own, as the old build's traffic would be during a deployment.
      let writes = 0;
      const writer = async (seed: number) => {
        const next = random(seed);
        const pick = () => userIds[Math.floor(next() * userIds.length)]!;
        const client = new pg.Client({ connectionString: db.url });
        await client.connect();
        try {
          while (!stop) {
            const r = next();
            try {
              if (r < 0.35) {
                await client.query(`insert into payments (user_id, amount, currency, status) select $1, 100 + s, 'gbp', 'PENDING' from generate_series(1, $2::int) s`, [pick(), 1 + Math.floor(next() * 5)]);
              } else if (r < 0.7) {
                await client.query('update payments set status = $1 where user_id = $2 and id % 3 = $3', [STATUSES[Math.floor(next() * STATUSES.length)], pick(), Math.floor(next() * 3)]);
              } else if (r < 0.85) {
                await client.query("update payments set amount = amount + 7, currency = 'usd' where user_id = $1 and id % 5 = 0", [pick()]);
              } else if (r < 0.95) {
                await client.query('delete from payments where user_id = $1 and id % 7 = 0', [pick()]);
              } else {
                await client.query(`insert into users (email, name, is_active) values (format('late%s@paygraph.dev', nextval('users_id_seq')), 'Late', $1)`, [next() < 0.5]);
              }
              writes++;
            } catch (err) {
              // Two multi-row updates of one user's payments in opposite orders: one is cancelled, having changed nothing.
              if ((err as { code?: string }).code !== '40P01') throw err;
            }
          }
        } finally {
          await client.end();
        }
      };
      // Each writer's failure is recorded where it is made (no promise waits without its handler).
      const failures: unknown[] = [];
      writers = [1, 2, 3].map((seed) => writer(seed).catch((err: unknown) => void failures.push(err)));
      await expect.poll(() => writes, { timeout: 10_000 }).toBeGreaterThan(30);
      const atStart = writes;
      expect(await migrate({ databaseUrl: db.url, quiet: true })).toEqual(migrationsList.slice(counters).map((m) => m.name));
      const during = writes - atStart;
      stop = true;
      await Promise.all(writers);
      // Writes went on while it filled (none failed), and nothing was counted twice or lost.
      expect(failures).toEqual([]);
      expect(during).toBeGreaterThan(0);
      await compareCounts((text) => db.query(text));
      console.info(`[counters] the fill on ${userIds.length} users with payments: ${during} writes beside it, counters equal to a full count`);
    } finally {
      stop = true;
      await Promise.all(writers);
      await db.drop();
    }
  });
});
