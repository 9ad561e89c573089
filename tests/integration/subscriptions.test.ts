import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { SignJWT } from 'jose';
import WebSocket from 'ws';
import { createTestApp, TEST_JWT_SECRET, type TestApp } from '../helpers/test-app.js';
import { signedEvent, stripeEnvFor, StripeDouble } from '../helpers/stripe-double.js';
import { subscribeWith, sleep, wsClient, type Subscriber } from '../helpers/ws-client.js';
import { RedisProcess, hasRedisServer } from '../helpers/redis-server.js';
import { projectRoot } from '../helpers/server-process.js';
import { createApp, type App } from '../../src/app.js';
import { secretKey } from '../../src/modules/auth/auth.js';

const redisUrl = inject('redisUrl');

const PAYMENT_UPDATED = 'subscription($id: ID) { paymentUpdated(id: $id) { id status amountRefunded user { email } } }';

let stripe: StripeDouble;
beforeAll(async () => {
  stripe = await StripeDouble.start();
});
afterAll(async () => stripe?.close());

const stripeEnv = () => stripeEnvFor(stripe, { RECONCILE_INTERVAL_SECONDS: '0' });

async function listen(app: App): Promise<string> {
  await app.fastify.listen({ host: '127.0.0.1', port: 0 });
  const address = app.fastify.server.address();
  return `ws://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/graphql`;
}

async function inject_(app: App, query: string, token: string, variables: Record<string, unknown> = {}) {
  const res = await app.fastify.inject({ method: 'POST', url: '/graphql', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, payload: JSON.stringify({ query, variables }) });
  return res.json();
}

async function deliver(app: App, event: { payload: string; signature: string }) {
  const res = await app.fastify.inject({ method: 'POST', url: '/webhooks/stripe', headers: { 'content-type': 'application/json', 'stripe-signature': event.signature }, payload: event.payload });
  return res.json() as { outcome: string };
}

let keySeq = 0;
async function createPayment(app: App, token: string, amount = 2500): Promise<{ id: string; intent: string }> {
  const body = await inject_(app, 'mutation($input: CreatePaymentInput!) { createPayment(input: $input) { payment { id stripePaymentId } } }', token, {
    input: { amount, currency: 'usd', idempotencyKey: `sub-${Date.now()}-${++keySeq}` },
  });
  expect(body.errors).toBeUndefined();
  return { id: body.data.createPayment.payment.id, intent: body.data.createPayment.payment.stripePaymentId };
}

const succeeded = (intent: string) => signedEvent('payment_intent.succeeded', { id: intent, object: 'payment_intent' });

/** Waits until the server has registered `count` subscriptions (the subscribe message is processed asynchronously). */
async function untilSubscribed(app: App, count: number): Promise<void> {
  for (let i = 0; i < 200 && app.realtime.activeSubscriptions < count; i++) await sleep(10);
  expect(app.realtime.activeSubscriptions).toBeGreaterThanOrEqual(count);
}

const closeCode = (url: string, token: string | null): Promise<number> =>
  new Promise((resolve) => {
    const client = wsClient(url, token, { onClose: (code) => resolve(code) });
    subscribeWith(client, PAYMENT_UPDATED);
  });

describe.skipIf(!redisUrl)('payment subscriptions across two instances on one Redis', () => {
  let t: TestApp;
  let b: App;
  let urlA: string;
  let user2: string;
  let user3: string;
  let admin: string;
  const clients: ReturnType<typeof wsClient>[] = [];
  const client = (token: string) => {
    const c = wsClient(urlA, token);
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    t = await createTestApp({
      seed: { users: 4, paymentsPerUser: 1 },
      env: { ...stripeEnv(), REDIS_URL: redisUrl, CACHE_ENABLED: 'true', CACHE_NAMESPACE: `sub${randomBytes(4).toString('hex')}` },
    });
    b = await createApp(t.config);
    urlA = await listen(t.app);
    admin = await t.adminToken();
    user2 = await t.userToken(2);
    user3 = await t.userToken(3);
  });
  afterAll(async () => {
    for (const c of clients) await c.dispose();
    await b?.close();
    await t?.close();
  });

  it('delivers a change made by a webhook on the other instance, within a second, exactly once', async () => {
    const { id, intent } = await createPayment(b, user2);
    const sub = subscribeWith(client(user2), PAYMENT_UPDATED, { id });
    await untilSubscribed(t.app, 1);
    const started = Date.now();
    const event = succeeded(intent);
    expect((await deliver(b, event)).outcome).toBe('transitioned');
    await sub.waitFor(1, 1000);
    const latencyMs = Date.now() - started;
    expect(latencyMs).toBeLessThan(1000);
    console.log(`[subscriptions] webhook on instance B -> subscriber on instance A: ${latencyMs} ms`);
    expect(sub.results[0]).toEqual({ data: { paymentUpdated: { id, status: 'COMPLETED', amountRefunded: 0, user: { email: 'user2@paygraph.dev' } } } });
    // The same event redelivered: no second event.
    expect((await deliver(b, event)).outcome).toBe('duplicate');
    await sleep(300);
    expect(sub.results).toHaveLength(1);
    await sub.dispose();
  });

  it('delivers createPayment and refundPayment made on the other instance', async () => {
    const own = subscribeWith(client(user2), PAYMENT_UPDATED);
    await untilSubscribed(t.app, 1);
    const { id, intent } = await createPayment(b, user2, 4000);
    // Created, then linked to its PaymentIntent: two changes.
    await own.waitFor(2);
    expect(own.results.map((r) => r.data.paymentUpdated)).toEqual([
      { id, status: 'PENDING', amountRefunded: 0, user: { email: 'user2@paygraph.dev' } },
      { id, status: 'PENDING', amountRefunded: 0, user: { email: 'user2@paygraph.dev' } },
    ]);
    stripe.succeed(intent);
    await deliver(b, succeeded(intent));
    await own.waitFor(3);
    expect((await inject_(b, `mutation { refundPayment(id: "${id}", amount: 1000) { id } }`, admin)).errors).toBeUndefined();
    const refunded = signedEvent('charge.refunded', { id: `ch_${intent}`, object: 'charge', payment_intent: intent, amount: 4000, amount_refunded: 1000, refunded: false });
    expect((await deliver(b, refunded)).outcome).toBe('refund_recorded');
    await own.waitFor(4);
    expect(own.results[3]!.data.paymentUpdated).toMatchObject({ id, status: 'COMPLETED', amountRefunded: 1000 });
    await own.dispose();
  });

  it("keeps a viewer away from others' payments: NOT_FOUND for one by id, nothing of theirs without id", async () => {
    const { id, intent } = await createPayment(b, user2);
    // graphql-ws answers a subscription whose source stream could not start with one result and complete.
    const prying = subscribeWith(client(user3), PAYMENT_UPDATED, { id });
    await prying.waitFor(1);
    expect(prying.results[0]).toMatchObject({ errors: [{ message: 'Payment not found', extensions: { code: 'NOT_FOUND' } }] });
    expect(prying.results[0]!.data ?? null).toBeNull();
    for (let i = 0; i < 50 && !prying.completed; i++) await sleep(10);
    expect(prying.completed).toBe(true);

    const mine = subscribeWith(client(user3), PAYMENT_UPDATED);
    const all = subscribeWith(client(admin), PAYMENT_UPDATED);
    await untilSubscribed(t.app, 2);
    await deliver(b, succeeded(intent));
    await all.waitFor(1);
    await sleep(200);
    expect(mine.results).toEqual([]);
    expect(all.results[0]!.data.paymentUpdated).toMatchObject({ id, status: 'COMPLETED' });
    await mine.dispose();
    await all.dispose();
  });

  it('refuses a missing, garbled, wrongly signed or expired token with 4403', async () => {
    const key = secretKey(TEST_JWT_SECRET);
    const expired = await new SignJWT({ role: 'USER' }).setProtectedHeader({ alg: 'HS256' }).setSubject('2').setExpirationTime(Math.floor(Date.now() / 1000) - 10).sign(key);
    const forged = await new SignJWT({ role: 'ADMIN' }).setProtectedHeader({ alg: 'HS256' }).setSubject('1').setExpirationTime('1h').sign(secretKey('x'.repeat(40)));
    for (const token of [null, 'garbage', forged, expired]) expect(await closeCode(urlA, token)).toBe(4403);
  });

  it('closes a live socket when its token expires', async () => {
    const soon = await new SignJWT({ role: 'USER' }).setProtectedHeader({ alg: 'HS256' }).setSubject('2').setExpirationTime(Math.floor(Date.now() / 1000) + 2).sign(secretKey(TEST_JWT_SECRET));
    const started = Date.now();
    const code = await closeCode(urlA, soon);
    expect(code).toBe(4403);
    expect(Date.now() - started).toBeGreaterThan(800);
  });

  it('fans one change out to 100 subscribers of one payment with at most 2 statements on that instance', async () => {
    const { id, intent } = await createPayment(t.app, user2);
    const socket = client(user2);
    const many: Subscriber[] = [];
    // 5 sockets x 20 subscriptions (the per-socket limit).
    const sockets = [socket, client(user2), client(user2), client(user2), client(user2)];
    for (const s of sockets) for (let i = 0; i < 20; i++) many.push(subscribeWith(s, PAYMENT_UPDATED, { id }));
    await untilSubscribed(t.app, 100);
    const before = t.app.sqlTotals.attributed + t.app.sqlTotals.unattributed;
    // The webhook goes to B: A's statements are only its subscribers' (the row travels in the event).
    await deliver(b, succeeded(intent));
    await Promise.all(many.map((s) => s.waitFor(1)));
    const statements = t.app.sqlTotals.attributed + t.app.sqlTotals.unattributed - before;
    expect(statements).toBeLessThanOrEqual(2);
    for (const s of many) expect(s.results).toEqual([{ data: { paymentUpdated: { id, status: 'COMPLETED', amountRefunded: 0, user: { email: 'user2@paygraph.dev' } } } }]);
    for (const s of many) await s.dispose();
    console.log(`[subscriptions] 100 subscribers of one payment: ${statements} statement(s) on the subscribers' instance`);
  });

  it('publishes nothing for a write that rolls back', async () => {
    const { id, intent } = await createPayment(b, user2);
    const sub = subscribeWith(client(user2), PAYMENT_UPDATED, { id });
    await untilSubscribed(t.app, 1);
    await t.sql(`create function refuse_audit() returns trigger language plpgsql as $$ begin raise exception 'audit refused'; end $$`);
    await t.sql('create trigger refuse_audit before insert on audit_log for each row execute function refuse_audit()');
    try {
      const event = succeeded(intent);
      const res = await b.fastify.inject({ method: 'POST', url: '/webhooks/stripe', headers: { 'content-type': 'application/json', 'stripe-signature': event.signature }, payload: event.payload });
      expect(res.statusCode).toBe(500);
    } finally {
      await t.sql('drop trigger refuse_audit on audit_log');
      await t.sql('drop function refuse_audit()');
    }
    await sleep(300);
    expect(sub.results).toEqual([]);
    expect((await t.sql('select status from payments where id = ?', [Number(id)]))[0]).toEqual({ status: 'PENDING' });
    await sub.dispose();
  });

  it('delivers a change made by `npm run reconcile` in another process', async () => {
    const { id, intent } = await createPayment(b, user2);
    stripe.succeed(intent);
    // The oldest unsettled payment, so a run of one takes it (the seed's demo intents are unknown to the double).
    await t.sql(`update payments set updated_at = timestamptz '2000-01-01' where id = ?`, [Number(id)]);
    const sub = subscribeWith(client(user2), PAYMENT_UPDATED, { id });
    await untilSubscribed(t.app, 1);
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      ...stripeEnv(),
      NODE_ENV: 'test',
      DATABASE_URL: t.db.url,
      REDIS_URL: redisUrl,
      CACHE_NAMESPACE: t.config.cache.namespace,
      RECONCILE_AFTER_SECONDS: '60',
      RECONCILE_BATCH_SIZE: '1',
      RECONCILE_MIN_CALL_INTERVAL_MS: '0',
      LOG_LEVEL: 'silent',
    };
    for (const name of ['VITEST', 'VITEST_POOL_ID', 'VITEST_WORKER_ID']) delete env[name];
    let output = '';
    const code = await new Promise<number | null>((resolve) => {
      const child = spawn('npm', ['run', '--silent', 'reconcile'], { cwd: projectRoot, env });
      child.stdout.on('data', (c) => (output += c));
      child.stderr.on('data', (c) => (output += c));
      child.on('exit', resolve);
    });
    expect(code, output).toBe(0);
    await sub.waitFor(1, 3000);
    expect(sub.results[0]!.data.paymentUpdated).toMatchObject({ id, status: 'COMPLETED' });
    await sub.dispose();
  }, 60_000);

  it('exports sockets, subscriptions, events published and delivered in /metrics', async () => {
    // The previous test's subscription winds down after its dispose: until it has, a count of 1
    // would not say that this one is there.
    for (let i = 0; i < 200 && t.app.realtime.activeSubscriptions > 0; i++) await sleep(10);
    expect(t.app.realtime.activeSubscriptions).toBe(0);
    const sub = subscribeWith(client(admin), PAYMENT_UPDATED);
    await untilSubscribed(t.app, 1);
    const { intent } = await createPayment(t.app, user2);
    await deliver(t.app, succeeded(intent));
    await sub.waitFor(3);
    const text = (await t.app.fastify.inject({ method: 'GET', url: '/metrics' })).body;
    expect(text).toMatch(/^graphql_ws_sockets_open [1-9]\d*$/m);
    expect(text).toMatch(/^graphql_ws_subscriptions_active [1-9]\d*$/m);
    expect(text).toMatch(/^payment_events_published_total [1-9]\d*$/m);
    expect(text).toMatch(/^payment_events_delivered_total [1-9]\d*$/m);
    await sub.dispose();
  });

  it('a subscriber deactivated, deleted or demoted on the other instance is checked again before the next event: closed 4403, or the ADMIN stream ended; the event is not delivered', async () => {
    const settle = async (owner: string) => {
      const { intent } = await createPayment(b, owner);
      return () => deliver(b, succeeded(intent));
    };
    const closedWith = (token: string) => {
      let resolve!: (code: number) => void;
      const closed = new Promise<number>((r) => (resolve = r));
      const c = wsClient(urlA, token, { onClose: (code) => resolve(code) });
      clients.push(c);
      return { client: c, closed };
    };
    for (let i = 0; i < 200 && t.app.realtime.activeSubscriptions > 0; i++) await sleep(10);

    // Deactivated on B while subscribed on A: the next event of theirs closes their socket, unsent.
    const deactivated = closedWith(user3);
    const sub3 = subscribeWith(deactivated.client, PAYMENT_UPDATED);
    const pay3 = await settle(user3);
    await untilSubscribed(t.app, 1);
    await sub3.waitFor(2); // its creation and its intent: delivered while the user may connect
    expect((await inject_(b, 'mutation { updateUser(id: "3", input: { isActive: false }) { id } }', admin)).errors).toBeUndefined();
    await pay3();
    expect(await deactivated.closed).toBe(4403);
    expect(sub3.results).toHaveLength(2);
    await inject_(b, 'mutation { updateUser(id: "3", input: { isActive: true }) { id } }', admin);

    // Deleted on B: the same.
    const user4 = await t.userToken(4);
    const deleted = closedWith(user4);
    const sub4 = subscribeWith(deleted.client, PAYMENT_UPDATED);
    const pay4 = await settle(user4);
    await sub4.waitFor(2);
    expect((await inject_(b, 'mutation { deleteUser(id: "4") }', admin)).errors).toBeUndefined();
    await pay4();
    expect(await deleted.closed).toBe(4403);
    expect(sub4.results).toHaveLength(2);

    // Demoted on B: an ADMIN's stream of every payment ends at the next event, which it does not get.
    await inject_(b, 'mutation { updateUser(id: "2", input: { role: ADMIN }) { id } }', admin);
    const all = subscribeWith(client(user2), PAYMENT_UPDATED);
    await untilSubscribed(t.app, 1);
    const payOther = await settle(user3);
    await all.waitFor(2); // user 3's payment: an ADMIN's stream has it
    await inject_(b, 'mutation { updateUser(id: "2", input: { role: USER }) { id } }', admin);
    await payOther();
    await expect.poll(() => all.completed, { timeout: 3000 }).toBe(true);
    expect(all.results).toHaveLength(2);
  });
});

describe('limits and drain', () => {
  let t: TestApp;
  let url: string;
  let user2: string;
  beforeAll(async () => {
    t = await createTestApp({
      seed: { users: 3, paymentsPerUser: 1 },
      env: { ...stripeEnv(), SUBSCRIPTIONS_PER_SOCKET: '2', WS_MAX_SOCKETS: '3', WS_CONNECTION_INIT_TIMEOUT_MS: '300', WS_MAX_BUFFERED_BYTES: '1024' },
    });
    url = await listen(t.app);
    user2 = await t.userToken(2);
  });
  afterAll(async () => t?.close());

  it('SUBSCRIPTIONS_PER_SOCKET: 2 pass, the third is refused with its code', async () => {
    const c = wsClient(url, user2);
    try {
      const ok = [subscribeWith(c, PAYMENT_UPDATED), subscribeWith(c, PAYMENT_UPDATED)];
      await untilSubscribed(t.app, 2);
      const third = subscribeWith(c, PAYMENT_UPDATED);
      await expect(third.waitFor(1)).rejects.toThrow(/At most 2 subscriptions per socket/);
      expect(JSON.stringify(third.errors)).toMatch(/SUBSCRIPTION_LIMIT/);
      for (const s of ok) expect(s.errors).toEqual([]);
    } finally {
      await c.dispose();
    }
  });

  it('the same depth and token limits as queries, with their own messages', async () => {
    const c = wsClient(url, user2);
    try {
      const deep = subscribeWith(c, 'subscription { paymentUpdated { user { payments(first: 1) { nodes { user { payments(first: 1) { nodes { user { id } } } } } } } } }');
      await expect(deep.waitFor(1)).rejects.toThrow(/Query depth limit of 8 exceeded, found 9/);
      const tokens = subscribeWith(c, `subscription { paymentUpdated { ${Array.from({ length: 2100 }, () => 'id').join(' ')} } }`);
      await expect(tokens.waitFor(1)).rejects.toThrow(/Document contains more that 2000 tokens/);
      const query = subscribeWith(c, '{ me { id } }');
      await expect(query.waitFor(1)).rejects.toThrow(/Only subscriptions go over WebSocket/);
    } finally {
      await c.dispose();
    }
  });

  it('the same cost limit as queries: lists multiplied by their first', async () => {
    const c = wsClient(url, user2);
    try {
      const nested = (first: number) => `subscription { paymentUpdated { user { payments(first: ${first}) { nodes { user { payments(first: ${first}) { nodes { id } } } } } } } }`;
      const costly = subscribeWith(c, nested(150));
      await expect(costly.waitFor(1)).rejects.toThrow(/Query is too expensive: cost \d+ is over the limit of 20000/);
      const fine = subscribeWith(c, nested(10));
      await untilSubscribed(t.app, 1);
      expect(fine.errors).toEqual([]);
      await fine.dispose();
    } finally {
      await c.dispose();
    }
  });

  it('closes a socket that sends no connection_init in time (4408)', async () => {
    const code = await new Promise<number>((resolve) => {
      const raw = new WebSocket(url, 'graphql-transport-ws');
      raw.on('close', (c) => resolve(c));
    });
    expect(code).toBe(4408);
  });

  it('WS_MAX_SOCKETS: 3 open sockets pass, a fourth upgrade is refused', async () => {
    const open = [wsClient(url, user2), wsClient(url, user2), wsClient(url, user2)];
    try {
      const subs = open.map((c) => subscribeWith(c, PAYMENT_UPDATED));
      await untilSubscribed(t.app, 3);
      expect(subs.every((s) => s.errors.length === 0)).toBe(true);
      const status = await new Promise<number>((resolve) => {
        const raw = new WebSocket(url, 'graphql-transport-ws');
        raw.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
        raw.on('error', () => undefined);
      });
      expect(status).toBe(503);
    } finally {
      for (const c of open) await c.dispose();
    }
  });

  it('drops a socket that stopped reading instead of buffering for it', async () => {
    // Start from no socket at all, so the one below is this client's.
    for (let i = 0; i < 200 && (t.app.realtime.sockets.size > 0 || t.app.realtime.activeSubscriptions > 0); i++) await sleep(10);
    const c = wsClient(url, user2);
    try {
      const sub = subscribeWith(c, PAYMENT_UPDATED);
      await untilSubscribed(t.app, 1);
      expect(t.app.realtime.sockets.size).toBe(1);
      // As the server sees a client that stopped reading: more waiting to be sent than allowed.
      const server = [...t.app.realtime.sockets].at(-1); // the newest: this client's
      Object.defineProperty(server, 'bufferedAmount', { get: () => 2048 });
      const closed = new Promise<void>((resolve) => server!.once('close', () => resolve()));
      await createPayment(t.app, user2);
      await closed;
      expect(sub.results).toEqual([]);
      const text = (await t.app.fastify.inject({ method: 'GET', url: '/metrics' })).body;
      expect(text).toMatch(/^graphql_ws_drops_total\{reason="not_reading"\} [1-9]\d*$/m);
    } finally {
      await c.dispose();
    }
  });

  it('closes open sockets with 1001 on shutdown, so clients reconnect elsewhere', async () => {
    const own = await createTestApp({ seed: { users: 2, paymentsPerUser: 0 } });
    const ownUrl = await listen(own.app);
    const token = await own.userToken(2);
    const code = new Promise<number>((resolve) => {
      const c = wsClient(ownUrl, token, { onClose: (closeCode) => resolve(closeCode) });
      subscribeWith(c, PAYMENT_UPDATED);
    });
    for (let i = 0; i < 200 && own.app.realtime.activeSubscriptions < 1; i++) await sleep(10);
    await own.close();
    expect(await code).toBe(1001);
  });
});

describe.skipIf(!hasRedisServer())('when Redis goes down', () => {
  it('local delivery goes on without a crash, and cross-instance delivery resumes once it is back', async () => {
    const redis = await RedisProcess.start();
    const t = await createTestApp({
      seed: { users: 3, paymentsPerUser: 0 },
      env: { ...stripeEnv(), REDIS_URL: redis.url, CACHE_ENABLED: 'true', CACHE_TIMEOUT_MS: '100', CACHE_NAMESPACE: `down${randomBytes(4).toString('hex')}` },
    });
    const b = await createApp(t.config);
    const url = await listen(t.app);
    const user2 = await t.userToken(2);
    const c = wsClient(url, user2);
    try {
      const sub = subscribeWith(c, PAYMENT_UPDATED);
      await untilSubscribed(t.app, 1);
      await createPayment(b, user2);
      await sub.waitFor(2);

      await redis.stop();
      // A change on this instance still reaches its own subscriber.
      const local = await createPayment(t.app, user2);
      await sub.waitFor(4);
      expect(sub.results.slice(2).map((r) => r.data.paymentUpdated.id)).toEqual([local.id, local.id]);
      // /readyz says degraded, and stays 200.
      const ready = await t.app.fastify.inject({ method: 'GET', url: '/readyz' });
      expect(ready.statusCode).toBe(200);
      expect(ready.json().status).toBe('degraded');

      await redis.start();
      // Once both instances are reconnected, B's changes reach A's subscriber again.
      let delivered = false;
      for (let i = 0; i < 50 && !delivered; i++) {
        await sleep(200);
        const remote = await createPayment(b, user2);
        for (let j = 0; j < 25 && !delivered; j++) {
          delivered = sub.results.some((r) => r.data.paymentUpdated.id === remote.id);
          if (!delivered) await sleep(20);
        }
      }
      expect(delivered).toBe(true);
    } finally {
      await c.dispose();
      await b.close();
      await t.close();
      await redis.stop();
    }
  }, 60_000);
});

describe('keep-alive', () => {
  let t: TestApp;
  let url: string;
  beforeAll(async () => {
    t = await createTestApp({ seed: { users: 2, paymentsPerUser: 0 }, env: { WS_KEEPALIVE_MS: '200' } });
    url = await listen(t.app);
  });
  afterAll(async () => t?.close());

  /** A raw graphql-ws connection that may or may not answer pings; `closed` when the server ended it within 1.2 s. */
  const connect = async (autoPong: boolean): Promise<{ closed: boolean; code?: number }> => {
    const token = await t.userToken(2);
    return new Promise((resolve) => {
      const ws = new WebSocket(url, 'graphql-transport-ws', { autoPong });
      ws.on('open', () => ws.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } })));
      ws.on('close', (code) => resolve({ closed: true, code }));
      setTimeout(() => {
        resolve({ closed: false });
        ws.close();
      }, 1200);
    });
  };

  it('terminates a socket that does not answer pings, and keeps one that does', async () => {
    const [silent, answering] = await Promise.all([connect(false), connect(true)]);
    expect(silent).toEqual({ closed: true, code: 1006 });
    expect(answering).toEqual({ closed: false });
  });
});
