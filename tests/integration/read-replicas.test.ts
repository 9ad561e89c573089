import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import pg from 'pg';
import { ReplicaCluster } from '../helpers/replica-cluster.js';
import { loadConfig } from '../../src/config.js';
import { createApp, type App, type AppOptions } from '../../src/app.js';
import { Arg, Ctx, FieldResolver, Int, Resolver, Root } from 'type-graphql';
import { createClient } from '@keyv/redis';
import { UserType } from '../../src/modules/user/user.types.js';
import type { UserRow } from '../../src/modules/user/user.repository.js';
import type { Context } from '../../src/context.js';
import { queryRows } from '../../src/core/sql.js';
import { seedDemoData } from '../../src/db/seeders/demo.seeder.js';
import { secretKey, signToken } from '../../src/modules/auth/auth.js';
import { Role } from '../../src/modules/user/user.entity.js';
import { postTo, TEST_JWT_SECRET, testEnv } from '../helpers/test-app.js';
import { signedEvent, stripeEnvFor, StripeDouble } from '../helpers/stripe-double.js';
import { findPgbouncer, Pgbouncer } from '../helpers/pgbouncer.js';

const redisUrl = inject('redisUrl');

const post = (app: App, query: string, token: string, variables?: Record<string, unknown>, headers?: Record<string, string>) => postTo(app, query, { token, variables, headers });

/** Tests only: a read through the query cache (so routed to the replica) that takes as long as asked. */
@Resolver(() => UserType)
class SlowReadResolver {
  @FieldResolver(() => Int)
  async slowRead(@Root() user: UserRow, @Arg('ms', () => Int) ms: number, @Ctx() ctx: Context): Promise<number> {
    await ctx.cache.getOrLoad('slowRead', [ms], { tags: () => [`user:${user.id}`] }, (em) => queryRows(em, 'select pg_sleep(?)', [ms / 1000]));
    return ms;
  }
}

async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/**
 * Read replicas on real servers: a primary and its streaming replica made by the harness (initdb,
 * pg_basebackup), lag made with pg_wal_replay_pause(), an outage made by stopping the replica.
 */
// CI always has Redis (global setup fails without it); two instances share their marks through it.
describe.skipIf(!redisUrl)('read replicas', () => {
  const DB = 'paygraph_replicas';
  let cluster: ReplicaCluster;
  let stripe: StripeDouble;
  let replicaClient: pg.Client;
  const apps: App[] = [];
  let bouncer: Pgbouncer | null = null;
  let tokens: { admin: string; admin2: string; user2: string; user3: string; user6: string };
  const namespace = `rr${randomBytes(4).toString('hex')}`;

  const start = async (env: Record<string, string> = {}, options: AppOptions = {}) => {
    const app = await createApp(
      loadConfig({
        ...testEnv(cluster.primaryUrl(DB)),
        DATABASE_REPLICA_URLS: cluster.replicaUrl(DB),
        DATABASE_REPLICA_CHECK_MS: '100',
        REDIS_URL: redisUrl,
        CACHE_NAMESPACE: namespace,
        ...stripeEnvFor(stripe),
        ...env,
      }),
      options,
    );
    apps.push(app);
    return app;
  };

  /** Until the replica has replayed everything the primary has written so far. */
  const caughtUp = async () => {
    const primary = new pg.Client({ connectionString: cluster.primaryUrl(DB) });
    await primary.connect();
    const { rows } = await primary.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn');
    await primary.end();
    await until('the replica to catch up', async () => (await replicaClient.query('select pg_last_wal_replay_lsn() >= $1::pg_lsn as done', [rows[0]!.lsn])).rows[0].done);
  };

  beforeAll(async () => {
    cluster = await ReplicaCluster.start();
    stripe = await StripeDouble.start();
    const admin = new pg.Client({ connectionString: cluster.primaryUrl() });
    await admin.connect();
    await admin.query(`create database ${DB}`);
    await admin.end();
    const first = await start();
    await seedDemoData(first.orm.em.fork(), { users: 6, paymentsPerUser: 3 });
    // A second ADMIN, who writes nothing: their reads carry no mark of their own.
    await first.orm.em.fork().getConnection().execute("update users set role = 'ADMIN' where id = 5");
    replicaClient = new pg.Client({ connectionString: cluster.replicaUrl(DB) });
    // The outage test stops the replica under this client: its end is expected, not a failure.
    replicaClient.on('error', () => undefined);
    await replicaClient.connect();
    await caughtUp();
    await until('the replica to enter the rotation', () => first.fastify.inject({ method: 'GET', url: '/readyz' }).then((r) => r.json().replicas?.[0]?.status === 'ok'));
    const key = secretKey(TEST_JWT_SECRET);
    tokens = {
      admin: await signToken(key, { id: 1, role: Role.ADMIN }, 3600),
      admin2: await signToken(key, { id: 5, role: Role.ADMIN }, 3600),
      user2: await signToken(key, { id: 2, role: Role.USER }, 3600),
      user3: await signToken(key, { id: 3, role: Role.USER }, 3600),
      user6: await signToken(key, { id: 6, role: Role.USER }, 3600),
    };
    // The namespace's read-your-writes marks are new: for the loss window (DATABASE_REPLICA_MAX_LAG_MS
    // and two checks) an absent mark may be one lost, and reads go to the primary. Then the replica.
    await until('absent marks to be trusted', async () => (await post(first, '{ user(id: "6") { paymentCount } }', tokens.user6)).targets.includes('replica1'), 15_000);
  }, 120_000);
  afterAll(async () => {
    for (const app of apps) await app.close().catch(() => undefined);
    await bouncer?.stop();
    await replicaClient?.end().catch(() => undefined);
    await stripe?.close();
    await cluster?.stop();
  });

  it('sends the reads of Q1 to Q5 to the replica (counted on its side) and every write to the primary', async () => {
    const [app] = apps;
    const [payment] = (await app!.orm.em.fork().getConnection().execute('select id from payments where user_id = 2 order by id limit 1')) as { id: number }[];
    const ops = [
      { query: '{ users(first: 100) { nodes { id email payments(first: 10) { nodes { id amount status } } } } }', token: tokens.admin },
      { query: 'query($id: ID!) { user(id: $id) { email payments(first: 10) { nodes { amount status } } } }', token: tokens.user2, variables: { id: '2' } },
      { query: '{ paymentHistory(first: 20) { nodes { amount status user { email } } } }', token: tokens.user2 },
      { query: `{ payment(id: "${payment!.id}") { amount user { email } } }`, token: tokens.user2 },
      { query: '{ users(first: 50) { nodes { paymentCount(status: COMPLETED) } } }', token: tokens.admin },
    ];
    // Each viewer's row first (it is read on the primary, once, then comes from the cache).
    for (const t of [tokens.admin, tokens.user2]) await post(app!, '{ __typename }', t);
    for (const op of ops) {
      const before = (await cluster.replicaStatements(DB)).end;
      const r = await post(app!, op.query, op.token, op.variables);
      expect(r.body.errors).toBeUndefined();
      expect(r.targets.length).toBeGreaterThan(0);
      expect(new Set(r.targets)).toEqual(new Set(['replica1']));
      const { statements } = await cluster.replicaStatements(DB, before);
      expect(statements.filter((s) => !s.includes('pg_is_in_recovery'))).toHaveLength(r.targets.length);
    }

    const before = (await cluster.replicaStatements(DB)).end;
    const write = await post(app!, 'mutation { updateUser(id: "2", input: { name: "Written On The Primary" }) { name } }', tokens.user2);
    expect(write.body.data!.updateUser.name).toBe('Written On The Primary');
    expect(new Set(write.targets)).toEqual(new Set(['primary']));
    const { statements } = await cluster.replicaStatements(DB, before);
    expect(statements.filter((s) => /^\s*(update|insert|delete|begin)/i.test(s))).toEqual([]);
    const metrics = (await app!.fastify.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toMatch(/^db_statements_total\{target="replica1"\} [1-9]\d*$/m);
    expect(metrics).toMatch(/^db_statements_total\{target="primary"\} [1-9]\d*$/m);
    expect(metrics).toMatch(/^db_replica_lag_ms\{replica="replica1"\} \d+$/m);
  });

  it('with replay paused: a viewer reads their own write on this and on another instance; others are served', async () => {
    const [a] = apps;
    const b = await start();
    await replicaClient.query('select pg_wal_replay_pause()');
    try {
      const name = `Paused ${randomBytes(3).toString('hex')}`;
      await post(a!, `mutation { updateUser(id: "3", input: { name: "${name}" }) { name } }`, tokens.user3);
      for (const app of [a!, b]) {
        const me = await post(app, '{ me { name } }', tokens.user3);
        expect(me.body.data!.me.name).toBe(name);
        const own = await post(app, '{ user(id: "3") { name paymentCount } }', tokens.user3);
        expect(own.body.data!.user.name).toBe(name);
        expect(new Set(own.targets)).toEqual(new Set(['primary']));
      }
      // Someone who wrote nothing is still served by the replica, without error.
      await post(b, '{ __typename }', tokens.user6);
      const other = await post(b, '{ user(id: "6") { name paymentCount } }', tokens.user6);
      expect(other.body.errors).toBeUndefined();
      expect(new Set(other.targets)).toEqual(new Set(['replica1']));

      // A webhook is a write too: the owner never reads the payment as PENDING afterwards.
      const [pending] = (await a!.orm.em
        .fork()
        .getConnection()
        .execute("insert into payments (user_id, amount, currency, status, stripe_payment_id, created_at, updated_at) values (2, 900, 'usd', 'PENDING', 'pi_rr_1', now(), now()) returning id")) as { id: number }[];
      // (Inserted behind the API's back while replay is paused: the replica does not have it at all.)
      const event = signedEvent('payment_intent.succeeded', { id: 'pi_rr_1', object: 'payment_intent' });
      const delivered = await b.fastify.inject({ method: 'POST', url: '/webhooks/stripe', headers: { 'content-type': 'application/json', 'stripe-signature': event.signature }, payload: event.payload });
      expect(delivered.statusCode).toBe(200);
      for (const app of [a!, b]) {
        const seen = await post(app, `{ payment(id: "${pending!.id}") { status } }`, tokens.user2);
        expect(seen.body.data!.payment.status).toBe('COMPLETED');
      }
    } finally {
      await replicaClient.query('select pg_wal_replay_resume()');
    }
  });

  it('a mutation reads what it wrote: its reads after the write go to the primary', async () => {
    const [app] = apps;
    await replicaClient.query('select pg_wal_replay_pause()');
    try {
      const before = await post(app!, '{ user(id: "3") { paymentCount } }', tokens.user3);
      const created = await post(
        app!,
        'mutation($input: CreatePaymentInput!) { createPayment(input: $input) { payment { id user { paymentCount } } } }',
        tokens.user3,
        { input: { amount: 1200, currency: 'usd', idempotencyKey: `rr-${randomBytes(4).toString('hex')}` } },
      );
      expect(created.body.errors).toBeUndefined();
      expect(created.body.data!.createPayment.payment.user.paymentCount).toBe(before.body.data!.user.paymentCount + 1);
      expect(new Set(created.targets)).toEqual(new Set(['primary']));
    } finally {
      await replicaClient.query('select pg_wal_replay_resume()');
    }
  });

  it('never fills the cache from a replica that has not replayed the write that invalidated it', async () => {
    // The query and response caches on: a read by someone who wrote nothing is routed by the versions
    // of the tags it loads under, which carry the position of the write that last bumped them.
    const app = await start({ CACHE_ENABLED: 'true' });
    await caughtUp();
    await until('the replica in rotation', () => app.fastify.inject({ method: 'GET', url: '/readyz' }).then((r) => r.json().replicas?.[0]?.status === 'ok'));
    await post(app, '{ __typename }', tokens.admin2);
    await replicaClient.query('select pg_wal_replay_pause()');
    try {
      const name = `Cached ${randomBytes(3).toString('hex')}`;
      await post(app, `mutation { updateUser(id: "4", input: { name: "${name}" }) { name } }`, tokens.admin);
      const read = await post(app, '{ user(id: "4") { name } }', tokens.admin2);
      expect(read.body.data!.user.name).toBe(name);
      expect(new Set(read.targets)).toEqual(new Set(['primary']));
      // What was cached is the fresh row: served again (no statement), and to the owner too.
      const again = await post(app, '{ user(id: "4") { name } }', tokens.admin2);
      expect(again.body.data!.user.name).toBe(name);
      expect(again.targets).toEqual([]);
    } finally {
      await replicaClient.query('select pg_wal_replay_resume()');
    }
  });

  it('a tag version lost from Redis (evicted, flushed) is made anew past the primary\'s position: still no fill from a replica behind', async () => {
    const app = await start({ CACHE_ENABLED: 'true' });
    await caughtUp();
    await until('the replica in rotation', () => app.fastify.inject({ method: 'GET', url: '/readyz' }).then((r) => r.json().replicas?.[0]?.status === 'ok'));
    await post(app, '{ __typename }', tokens.admin2);
    await replicaClient.query('select pg_wal_replay_pause()');
    const redis = createClient({ url: redisUrl });
    await redis.connect();
    try {
      const name = `Evicted ${randomBytes(3).toString('hex')}`;
      await post(app, `mutation { updateUser(id: "6", input: { name: "${name}" }) { name } }`, tokens.admin);
      // The write's versions carried its position; eviction takes them (and every entry) away.
      const keys = await redis.keys(`${namespace}::tag:*`);
      expect(keys.length).toBeGreaterThan(0);
      await redis.del(keys);
      await redis.del(await redis.keys(`${namespace}::r:*`));
      const read = await post(app, '{ user(id: "6") { name } }', tokens.admin2);
      expect(read.body.data!.user.name).toBe(name);
      expect(new Set(read.targets)).toEqual(new Set(['primary']));
    } finally {
      await redis.close();
      await replicaClient.query('select pg_wal_replay_resume()');
    }
  });

  it('read-your-writes marks lost from Redis (evicted, flushed) read as unknown: the writer\'s next reads go to the primary', async () => {
    const [a] = apps;
    const b = await start();
    await replicaClient.query('select pg_wal_replay_pause()');
    const redis = createClient({ url: redisUrl });
    await redis.connect();
    try {
      // An ADMIN writes another user (whose row is then read through routing, unlike the viewer's own).
      await post(b, '{ __typename }', tokens.admin);
      const name = `Unmarked ${randomBytes(3).toString('hex')}`;
      await post(a!, `mutation { updateUser(id: "4", input: { name: "${name}" }) { name } }`, tokens.admin);
      // The marks go: the hash that held them is gone, so an absent mark proves nothing for a while.
      expect(await redis.exists(`${namespace}:marks`)).toBe(1);
      await redis.del([`${namespace}:marks`, `${namespace}:marks:at`]);
      const read = await post(b, '{ user(id: "4") { name } }', tokens.admin);
      expect(read.body.data!.user.name).toBe(name);
      expect(read.targets).toEqual(['primary']);
    } finally {
      await redis.close();
      await replicaClient.query('select pg_wal_replay_resume()');
    }
    // Once the loss window has passed (and the replica has replayed the write), the replica serves again.
    await until('absent marks to be trusted again', async () => (await post(b, '{ user(id: "6") { paymentCount } }', tokens.user6)).targets.includes('replica1'), 15_000);
  });

  it('a statement that times out on the replica fails its request (SERVICE_UNAVAILABLE) and leaves the replica in the rotation', async () => {
    const app = await start({ DB_STATEMENT_TIMEOUT_MS: '300', CACHE_ENABLED: 'true' }, { extraResolvers: [SlowReadResolver] });
    await caughtUp();
    await until('the replica in rotation', () => app.fastify.inject({ method: 'GET', url: '/readyz' }).then((r) => r.json().replicas?.[0]?.status === 'ok'));
    await post(app, '{ __typename }', tokens.admin2);
    // Its reads reach the replica (once the replica's known position is past the tags' versions).
    let n = 0;
    await until('reads on the replica', async () => (await post(app, `{ me { slowRead(ms: ${++n}) } }`, tokens.admin2)).targets.includes('replica1'));
    const slow = await post(app, '{ me { slowRead(ms: 1000) } }', tokens.admin2);
    expect(slow.body.errors!.map((e) => e.extensions!.code)).toEqual(['SERVICE_UNAVAILABLE']);
    // It ran on the replica, once: not again on the primary (it would have been as slow there).
    expect(slow.targets).toEqual(['replica1']);
    const state = (await app.fastify.inject({ method: 'GET', url: '/readyz' })).json();
    expect(state.replicas[0]).toMatchObject({ name: 'replica1', status: 'ok' });
    // Just under the timeout, the same read answers, from the replica.
    const quick = await post(app, '{ me { slowRead(ms: 200) } }', tokens.admin2);
    expect(quick.body.errors).toBeUndefined();
    expect(quick.targets).toEqual(['replica1']);
  });

  it('three instances over one primary (through PgBouncer), one replica and Redis: writes and reads spread, read-your-writes across them, nothing done twice', async () => {
    // PgBouncer in front of the primary where it is installed (always in CI: .ci/run installs it).
    const pooled = findPgbouncer() ? { DATABASE_URL: '', DATABASE_POOLER: 'transaction' } : null;
    if (pooled) {
      bouncer = await Pgbouncer.start(cluster.primaryUrl(), { poolSize: 10 });
      pooled.DATABASE_URL = bouncer.url(cluster.primaryUrl(DB));
    } else if (process.env.CI) throw new Error('CI must run this through PgBouncer');
    const three = [];
    for (let i = 0; i < 3; i++) three.push(await start({ CACHE_ENABLED: 'true', ...(pooled ?? {}) }));
    await caughtUp();
    for (const app of three) {
      await until('the replica in rotation', () => app.fastify.inject({ method: 'GET', url: '/readyz' }).then((r) => r.json().replicas?.[0]?.status === 'ok'));
    }

    // Read-your-writes when the write and the next read land on different instances, replay paused.
    await replicaClient.query('select pg_wal_replay_pause()');
    try {
      for (let i = 0; i < 6; i++) {
        const name = `Across ${i} ${randomBytes(2).toString('hex')}`;
        const [writer, reader] = [three[i % 3]!, three[(i + 1) % 3]!];
        await post(writer, `mutation { updateUser(id: "2", input: { name: "${name}" }) { name } }`, tokens.user2);
        expect((await post(reader, '{ me { name } }', tokens.user2)).body.data!.me.name).toBe(name);
        expect((await post(reader, '{ user(id: "2") { name paymentCount } }', tokens.user2)).body.data!.user.name).toBe(name);
      }
    } finally {
      await replicaClient.query('select pg_wal_replay_resume()');
    }
    await caughtUp();

    // Concurrent writes and reads over all three: 3 keys, each sent 10 times spread over the instances.
    const intentsBefore = stripe.intentCreations.length;
    const keys = [0, 1, 2].map((k) => `three-${k}-${randomBytes(3).toString('hex')}`);
    const requests = [];
    for (let n = 0; n < 30; n++) {
      const app = three[n % 3]!;
      requests.push(
        post(app, 'mutation($input: CreatePaymentInput!) { createPayment(input: $input) { payment { id } } }', tokens.user3, {
          input: { amount: 700, currency: 'usd', idempotencyKey: keys[n % 3] },
        }),
        post(app, '{ paymentHistory(first: 50) { nodes { id status } } }', tokens.user3),
      );
    }
    const answers = await Promise.all(requests);
    for (const a of answers) {
      expect(a.status).toBe(200);
      expect(a.body.errors).toBeUndefined();
    }
    const created = answers.filter((a) => a.body.data?.createPayment).map((a) => a.body.data!.createPayment.payment.id);
    expect(new Set(created).size).toBe(3);
    expect(stripe.intentCreations.length - intentsBefore).toBe(3);
    const rows = (await three[0]!.orm.em.fork().getConnection().execute(`select count(*)::int as n from payments where idempotency_key in ('${keys.join("','")}')`)) as { n: number }[];
    expect(rows[0]!.n).toBe(3);
    // Each instance read on the replica and wrote on the primary.
    for (const app of three) {
      const metrics = (await app.fastify.inject({ method: 'GET', url: '/metrics' })).body;
      expect(metrics).toMatch(/^db_statements_total\{target="replica1"\} [1-9]\d*$/m);
      expect(metrics).toMatch(/^db_statements_total\{target="primary"\} [1-9]\d*$/m);
    }

    // One webhook delivered to all three at once: applied once.
    const [payment] = (await three[0]!.orm.em.fork().getConnection().execute(
      `select id, stripe_payment_id from payments where idempotency_key = '${keys[0]}'`,
    )) as { id: number; stripe_payment_id: string }[];
    const event = signedEvent('payment_intent.succeeded', { id: payment!.stripe_payment_id, object: 'payment_intent' });
    const outcomes = await Promise.all(
      three.map((app) =>
        app.fastify
          .inject({ method: 'POST', url: '/webhooks/stripe', headers: { 'content-type': 'application/json', 'stripe-signature': event.signature }, payload: event.payload })
          .then((r) => r.json().outcome as string),
      ),
    );
    expect(outcomes.sort()).toEqual(['duplicate', 'duplicate', 'transitioned']);
    // And its owner reads it COMPLETED on every instance at once.
    for (const app of three) expect((await post(app, `{ payment(id: "${payment!.id}") { status } }`, tokens.user3)).body.data!.payment.status).toBe('COMPLETED');
  });

  it('a replica further behind than DATABASE_REPLICA_MAX_LAG_MS leaves the rotation, and comes back when it catches up', async () => {
    const app = await start({ DATABASE_REPLICA_MAX_LAG_MS: '400' });
    await caughtUp();
    await until('the replica in rotation', () => app.fastify.inject({ method: 'GET', url: '/readyz' }).then((r) => r.json().replicas?.[0]?.status === 'ok'));
    await post(app, '{ __typename }', tokens.user6);
    const before = (await post(app, '{ user(id: "6") { paymentCount } }', tokens.user6)).body.data!.user.paymentCount as number;
    await replicaClient.query('select pg_wal_replay_pause()');
    try {
      // The primary moves on (a row no cache holds); the replica does not.
      await app.orm.em
        .fork()
        .getConnection()
        .execute("insert into payments (user_id, amount, currency, status, created_at, updated_at) values (6, 100, 'usd', 'PENDING', now(), now())");
      await until('the lagging replica out of the rotation', () =>
        app.fastify.inject({ method: 'GET', url: '/readyz' }).then((r) => {
          const body = r.json();
          return r.statusCode === 200 && body.status === 'degraded' && /replay lag \d+ ms over 400 ms/.test(body.replicas[0].problem ?? '');
        }),
      );
      // user6 wrote nothing: only the lag keeps this read off the replica.
      const read = await post(app, '{ user(id: "6") { paymentCount } }', tokens.user6);
      expect(read.body.data!.user.paymentCount).toBe(before + 1);
      expect(new Set(read.targets)).toEqual(new Set(['primary']));
    } finally {
      await replicaClient.query('select pg_wal_replay_resume()');
    }
    await until('the replica back in the rotation', () => app.fastify.inject({ method: 'GET', url: '/readyz' }).then((r) => r.json().replicas?.[0]?.status === 'ok'));
    const back = await post(app, '{ user(id: "6") { paymentCount } }', tokens.user6);
    expect(back.body.data!.user.paymentCount).toBe(before + 1);
    expect(new Set(back.targets)).toEqual(new Set(['replica1']));
  });

  it('a replica stopped under load: no failed request, reads back on it once it is up again', async () => {
    const [app] = apps;
    const q = 'query($id: ID!) { user(id: $id) { email payments(first: 10) { nodes { amount status } } } }';
    let failed = 0;
    let served = 0;
    let stop = false;
    const worker = async () => {
      while (!stop) {
        const r = await post(app!, q, tokens.admin, { id: String(2 + (served % 4)) });
        if (r.status !== 200 || r.body.errors) failed++;
        served++;
      }
    };
    const load = Promise.all(Array.from({ length: 6 }, worker));
    await new Promise((resolve) => setTimeout(resolve, 300));
    await cluster.stopReplica();
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const ready = (await app!.fastify.inject({ method: 'GET', url: '/readyz' })).json();
    stop = true;
    await load;
    expect(failed).toBe(0);
    expect(served).toBeGreaterThan(20);
    expect(ready.status).toBe('degraded');
    expect(ready.replicas[0].status).toBe('degraded');
    const during = await post(app!, q, tokens.admin, { id: '2' });
    expect(new Set(during.targets)).toEqual(new Set(['primary']));

    await cluster.startReplica();
    await until('the replica back in the rotation', () => app!.fastify.inject({ method: 'GET', url: '/readyz' }).then((r) => r.json().replicas?.[0]?.status === 'ok'), 20_000);
    const after = await post(app!, q, tokens.admin, { id: '2' });
    expect(after.body.errors).toBeUndefined();
    expect(new Set(after.targets)).toEqual(new Set(['replica1']));
  });
});
