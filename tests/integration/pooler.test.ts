import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import pg from 'pg';
import { createTestApp, postTo, type TestApp } from '../helpers/test-app.js';
import { createApp, type App } from '../../src/app.js';
import { findPgbouncer, Pgbouncer } from '../helpers/pgbouncer.js';
import { signedEvent, stripeEnvFor, StripeDouble } from '../helpers/stripe-double.js';
import { createTestDatabase } from '../helpers/database.js';
import { migrate } from '../../src/db/orm.js';
import { migrationsList } from '../../src/db/migrations/index.js';

const pgServerUrl = inject('pgServerUrl');
// CI installs PgBouncer (.ci/run) and must run this; a bare machine without the package skips it.
const available = findPgbouncer() !== null;
if (!available && process.env.CI) throw new Error('pgbouncer is not installed, and CI must run the pooler tests (.ci/run installs it)');

const post = (app: App, query: string, token: string, variables?: Record<string, unknown>) => postTo(app, query, { token, variables });

/**
 * The app behind a real PgBouncer in transaction pooling mode (DATABASE_POOLER=transaction): no session
 * state outlives a transaction, so what holds on a direct connection holds through the pooler.
 */
describe.skipIf(!available)('behind PgBouncer in transaction mode', () => {
  let t: TestApp;
  let stripe: StripeDouble;
  let bouncer: Pgbouncer;
  let pooled: App;
  let admin: string;
  let user2: string;

  beforeAll(async () => {
    stripe = await StripeDouble.start();
    t = await createTestApp({ seed: { users: 6, paymentsPerUser: 4 }, env: stripeEnvFor(stripe, { DB_STATEMENT_TIMEOUT_MS: '300' }) });
    // A small pool: 5 server connections serve every client of the test, as in production.
    bouncer = await Pgbouncer.start(pgServerUrl, { poolSize: 5 });
    pooled = await createApp({ ...t.config, databaseUrl: bouncer.url(t.config.databaseUrl!), pooler: 'transaction' });
    admin = await t.adminToken();
    user2 = await t.userToken(2);
  });
  afterAll(async () => {
    await pooled?.close();
    await bouncer?.stop();
    await t?.close();
    await stripe?.close();
  });

  it('reaches PostgreSQL through the pooler, with the statement timeout and jit = off as the role defaults', async () => {
    const connection = pooled.orm.em.fork().getConnection();
    const [{ port }] = (await connection.execute("select current_setting('port') as port")) as { port: string }[];
    expect(Number(port)).toBe(Number(new URL(pgServerUrl).port || 5432));
    // PgBouncer's own admin console lists the app's connections as its clients, on the test database.
    const adminConsole = new pg.Client({ connectionString: bouncer.url(`postgresql://postgres@127.0.0.1/pgbouncer`) });
    await adminConsole.connect();
    try {
      const { rows } = await adminConsole.query<{ database: string }>('show clients');
      expect(rows.map((r) => r.database)).toContain(new URL(t.config.databaseUrl!).pathname.slice(1));
    } finally {
      await adminConsole.end();
    }
    expect(await connection.execute('show statement_timeout')).toEqual([{ statement_timeout: '300ms' }]);
    expect(await connection.execute('show jit')).toEqual([{ jit: 'off' }]);
    await expect(connection.execute('select pg_sleep(1)')).rejects.toThrow(/statement timeout/);
    // A direct connection sends the same settings as startup parameters (which PgBouncer would refuse).
    expect(await t.app.orm.em.fork().getConnection().execute('show statement_timeout')).toEqual([{ statement_timeout: '300ms' }]);
    expect(await t.app.orm.em.fork().getConnection().execute('show jit')).toEqual([{ jit: 'off' }]);
  });

  it('costs the same statements per operation as a direct connection', async () => {
    const ops = [
      { query: '{ users(first: 5) { nodes { id email payments(first: 3) { nodes { id amount status user { email } } } paymentCount } } }', token: admin },
      { query: '{ user(id: "2") { email payments(first: 10) { totalCount nodes { amount status } } paymentStats { status count } } }', token: user2 },
      { query: '{ paymentHistory(first: 20) { nodes { amount status user { email } } } }', token: user2 },
      { query: '{ payments(first: 10) { totalCount nodes { id user { email } } } }', token: admin },
    ];
    for (const token of [admin, user2]) for (const app of [t.app, pooled]) await post(app, '{ __typename }', token);
    for (const op of ops) {
      const direct = await post(t.app, op.query, op.token);
      const through = await post(pooled, op.query, op.token);
      expect(through.body.errors).toBeUndefined();
      expect(through.body.data).toEqual(direct.body.data);
      expect(through.statements).toBe(direct.statements);
      expect(through.statements).toBeGreaterThan(0);
    }
  });

  it('createPayment with one idempotency key, 10 times at once: one row, one PaymentIntent', async () => {
    const key = `pooled-${Date.now()}`;
    const before = stripe.intentCreations.length;
    const results = await Promise.all(
      Array.from({ length: 10 }, () =>
        post(pooled, 'mutation($input: CreatePaymentInput!) { createPayment(input: $input) { payment { id } } }', user2, {
          input: { amount: 1500, currency: 'usd', idempotencyKey: key },
        }),
      ),
    );
    for (const r of results) expect(r.body.errors).toBeUndefined();
    expect(new Set(results.map((r) => r.body.data!.createPayment.payment.id)).size).toBe(1);
    expect(stripe.intentCreations.length - before).toBe(1);
    expect(await t.sql('select id from payments where idempotency_key = ?', [key])).toHaveLength(1);
  });

  it('a webhook delivered twice is applied once', async () => {
    const [payment] = await t.sql<{ id: number; stripe_payment_id: string }>(
      "select id, stripe_payment_id from payments where stripe_payment_id is not null and status = 'PENDING' order by id desc limit 1",
    );
    const event = signedEvent('payment_intent.succeeded', { id: payment!.stripe_payment_id, object: 'payment_intent' });
    const deliver = () =>
      pooled.fastify.inject({ method: 'POST', url: '/webhooks/stripe', headers: { 'content-type': 'application/json', 'stripe-signature': event.signature }, payload: event.payload });
    const [first, second] = await Promise.all([deliver(), deliver()]);
    expect([first.json().outcome, second.json().outcome].sort()).toEqual(['duplicate', 'transitioned']);
    expect(await t.sql('select status from payments where id = ?', [payment!.id])).toEqual([{ status: 'COMPLETED' }]);
    expect(await t.sql('select count(*)::int as n from stripe_events where id = ?', [event.id])).toEqual([{ n: 1 }]);
  });

  it('a rolled-back transaction leaves nothing, and the pooled connections stay usable', async () => {
    await t.sql(`create function refuse_pooled() returns trigger language plpgsql as $$
      begin if new.after->>'name' = 'Pooled Poison' then raise exception 'poisoned audit entry'; end if; return new; end $$`);
    await t.sql('create trigger refuse_pooled before insert on audit_log for each row execute function refuse_pooled()');
    try {
      const r = await post(pooled, 'mutation { updateUser(id: "3", input: { name: "Pooled Poison" }) { name } }', admin);
      expect(r.body.errors?.[0]?.extensions?.code).toBe('INTERNAL_SERVER_ERROR');
      expect(await t.sql('select name from users where id = 3')).toEqual([{ name: 'Demo User 3' }]);
    } finally {
      await t.sql('drop trigger refuse_pooled on audit_log');
      await t.sql('drop function refuse_pooled()');
    }
    // More requests than the pool has server connections, each one its own transaction: none finds an
    // aborted transaction or a lock left behind by another.
    const writes = await Promise.all(
      Array.from({ length: 12 }, (_, i) => post(pooled, `mutation { updateUser(id: "4", input: { name: "Pooled ${i}" }) { name } }`, admin)),
    );
    for (const w of writes) expect(w.body.errors).toBeUndefined();
    expect((await t.sql<{ name: string }>('select name from users where id = 4'))[0]!.name).toMatch(/^Pooled \d+$/);
  });

  it('migrates a fresh database: refuses the migrations that run outside a transaction through the pooler, naming DATABASE_MIGRATION_URL, and applies them over it', async () => {
    const db = await createTestDatabase();
    try {
      const through = bouncer.url(db.url);
      await expect(migrate({ databaseUrl: through, pooler: 'transaction', quiet: true })).rejects.toThrow(
        /migration Migration20261201040000_list_indexes, Migration20261201050000_counters must run outside a transaction, which a transaction-mode pooler cannot do: set DATABASE_MIGRATION_URL/,
      );
      // Refused before any was applied: the check comes first, under the lock.
      expect(await db.query("select to_regclass('users') as t")).toEqual([{ t: null }]);
      // With a direct connection for migrations, the same start applies them all, then serves through the pooler.
      const app = await createApp({ ...t.config, databaseUrl: through, pooler: 'transaction', db: { ...t.config.db, migrationUrl: db.url } });
      try {
        expect((await db.query<{ name: string }>('select name from mikro_orm_migrations order by id')).map((r) => r.name)).toEqual(migrationsList.map((m) => m.name));
        expect(await db.query("select indexname from pg_indexes where indexname = 'users_email_trgm_index'")).toEqual([{ indexname: 'users_email_trgm_index' }]);
        const [{ port }] = (await app.orm.em.fork().getConnection().execute("select current_setting('port') as port")) as { port: string }[];
        expect(Number(port)).toBe(Number(new URL(pgServerUrl).port || 5432));
      } finally {
        await app.close();
      }
    } finally {
      await db.drop();
    }
  });
});
