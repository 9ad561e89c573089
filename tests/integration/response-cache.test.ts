import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestApp, postTo, type Posted, type TestApp } from '../helpers/test-app.js';
import { createApp, type App } from '../../src/app.js';
import { signedEvent, stripeEnvFor, StripeDouble } from '../helpers/stripe-double.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { createClient } from '@keyv/redis';

const redisUrl = inject('redisUrl');
const redisPort = redisUrl ? Number(new URL(redisUrl).port || 6379) : 0;
const STORES = [
  { store: 'memory', env: {} as Record<string, string> },
  { store: 'Redis', env: redisUrl ? { REDIS_URL: redisUrl } : null },
];

const post = postTo;
type Answer = Posted;

/** What PostgreSQL says now: the same operation with `Cache-Control: no-cache` (no cache read, no cache fill). */
async function truth(app: App, query: string, token: string, variables?: Record<string, unknown>) {
  const fresh = await post(app, query, { token, variables, headers: { 'cache-control': 'no-cache' } });
  expect(fresh.cache).toBe('bypass');
  expect(fresh.body.errors).toBeUndefined();
  return fresh.body.data;
}

/** Reads `query` until it is a hit (at most 3 tries: a payment's user is cached on the second run). */
async function warm(app: App, query: string, token: string) {
  let last: Answer | undefined;
  for (let i = 0; i < 3; i++) {
    last = await post(app, query, { token });
    expect(last.body.errors).toBeUndefined();
    if (last.cache === 'hit') return last;
  }
  throw new Error(`never a hit: ${query} (last: ${last?.cache})`);
}

/** Whole responses held: in process memory, or the `r:` keys of this app's namespace in Redis. */
async function storedResponses(app: App): Promise<number> {
  if (!app.cache.isShared) return app.responseCache!.memorySize.entries;
  const client = createClient({ url: redisUrl });
  await client.connect();
  try {
    return (await client.keys(`${app.cache.keyv.namespace}::r:*`)).length;
  } finally {
    await client.close();
  }
}

const deliver = (app: App, delivery: { payload: string; signature: string }) =>
  app.fastify.inject({ method: 'POST', url: '/webhooks/stripe', headers: { 'content-type': 'application/json', 'stripe-signature': delivery.signature }, payload: delivery.payload });

/**
 * Whole responses of queries, answered before parsing and execution, and never stale: each entry holds
 * the versions of the tags its reads depended on, and any write that bumps one makes it a miss, on
 * every instance sharing the store.
 */
describe.each(STORES)('response cache on $store', ({ env }) => {
  let t: TestApp;
  let stripe: StripeDouble;
  let admin: string;
  let user2: string;
  let user3: string;
  let app: App;

  beforeAll(async () => {
    if (!env) return;
    stripe = await StripeDouble.start();
    t = await createTestApp({
      seed: { users: 5, paymentsPerUser: 4 },
      env: stripeEnvFor(stripe, { ...env, CACHE_ENABLED: 'true', CACHE_NAMESPACE: `rc${randomBytes(4).toString('hex')}` }),
    });
    app = t.app;
    admin = await t.adminToken();
    user2 = await t.userToken(2);
    user3 = await t.userToken(3);
  });
  afterAll(async () => {
    await t?.close();
    await stripe?.close();
  });
  const run = it.skipIf(!env);

  run('answers a repeated query from the cache with the same JSON and no statement (Q1 to Q4)', async () => {
    const ops = [
      { query: 'query Q1 { users(first: 100) { totalCount nodes { id email payments(first: 10) { nodes { id amount status user { email } } } } } }', token: admin },
      { query: 'query Q2($id: ID!) { user(id: $id) { email payments(first: 10) { nodes { amount status } } } }', token: user3, variables: { id: '3' } },
      { query: 'query Q3 { paymentHistory(first: 20) { totalCount nodes { amount status user { email } } } }', token: user2 },
      { query: 'query Q4($id: ID!) { payment(id: $id) { amount user { email } } }', token: user2, variables: { id: '6' } },
    ];
    // Counted by the server's own statement totals: a hit's `extensions.sql` is written by the hit path.
    const sent = () => app.sqlTotals.attributed + app.sqlTotals.unattributed;
    for (const op of ops) {
      const before = sent();
      const first = await post(app, op.query, op);
      expect(first.body.errors).toBeUndefined();
      expect(first.cache).toBe('miss');
      expect(sent() - before).toBeGreaterThan(0);
      const beforeHit = sent();
      const second = await post(app, op.query, op);
      expect(second.cache).toBe('hit');
      expect(sent() - beforeHit).toBe(0);
      expect(second.body.data).toEqual(first.body.data);
      expect(second.body.extensions!.responseCache).toBe('hit');
    }
  });

  run('a variable changes the key: another id is a miss with its own answer', async () => {
    const q = 'query($id: ID!) { user(id: $id) { id } }';
    await post(app, q, { token: admin, variables: { id: '4' } });
    const other = await post(app, q, { token: admin, variables: { id: '5' } });
    expect(other.cache).toBe('miss');
    expect(other.body.data!.user.id).toBe('5');
  });

  run('never serves one viewer what was cached for another, whatever their role', async () => {
    const me = '{ me { id email } }';
    const two = await post(app, me, { token: user2 });
    const three = await post(app, me, { token: user3 });
    expect(three.cache).toBe('miss');
    expect([two.body.data!.me.id, three.body.data!.me.id]).toEqual(['2', '3']);
    expect((await post(app, me, { token: user3 })).body.data!.me.id).toBe('3');

    // An ADMIN's cached answer, asked for by a USER: the USER's own outcome, from execution.
    const q = '{ user(id: "2") { email } }';
    await warm(app, q, admin);
    const asUser3 = await post(app, q, { token: user3 });
    expect(asUser3.cache).toBe('bypass');
    expect(asUser3.body.errors![0]!.extensions!.code).toBe('NOT_FOUND');
    const list = '{ users(first: 5) { nodes { id } } }';
    await warm(app, list, admin);
    const listAsUser = await post(app, list, { token: user2 });
    expect(listAsUser.body.errors![0]!.extensions!.code).toBe('FORBIDDEN');
  });

  run("a viewer's role is part of the key, and a change of role is a miss with the new role's answer", async () => {
    // The key: the same request by the same user id under two roles is two entries.
    const body = { query: '{ me { id role } }' };
    const asUser = app.responseCache!.plan(body, {}, { id: 4, role: 'USER' as never });
    const asAdmin = app.responseCache!.plan(body, {}, { id: 4, role: 'ADMIN' as never });
    expect('key' in asUser && 'key' in asAdmin && asUser.key !== asAdmin.key).toBe(true);
    // End to end: user 4's token (role claim USER) is served as the user is now.
    const user4 = await t.userToken(4);
    const me = '{ me { id role } }';
    await warm(app, me, user4);
    await post(app, 'mutation { updateUser(id: "4", input: { role: ADMIN }) { id } }', { token: admin });
    const promoted = await post(app, me, { token: user4 });
    expect(promoted.cache).toBe('miss');
    expect(promoted.body.data!.me).toEqual({ id: '4', role: 'ADMIN' });
    expect((await warm(app, me, user4)).body.data!.me.role).toBe('ADMIN');
    await post(app, 'mutation { updateUser(id: "4", input: { role: USER }) { id } }', { token: admin });
    const demoted = await post(app, me, { token: user4 });
    expect(demoted.cache).toBe('miss');
    expect(demoted.body.data!.me).toEqual({ id: '4', role: 'USER' });
  });

  run('keys only what changes a response: unknown extensions and undeclared variables share one entry', async () => {
    const q = '{ me { id } }';
    const first = await post(app, q, { token: user2, headers: {}, variables: { unused: randomBytes(4).toString('hex') } });
    expect(['miss', 'hit']).toContain(first.cache);
    const again = await app.fastify.inject({
      method: 'POST',
      url: '/graphql',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${user2}` },
      payload: JSON.stringify({ query: q, variables: { other: 'x' }, extensions: { madeUp: randomBytes(8).toString('hex') } }),
    });
    expect(again.headers['x-response-cache']).toBe('hit');
    // (What does change the answer is still keyed: a declared variable, above; the viewer and role.)
  });

  run('stores nothing for an anonymous client, whatever variables or extensions it makes up', async () => {
    const before = await storedResponses(app);
    for (let i = 0; i < 5; i++) {
      const res = await app.fastify.inject({
        method: 'POST',
        url: '/graphql',
        headers: { 'content-type': 'application/json' },
        payload: JSON.stringify({ query: '{ __typename }', variables: { v: randomBytes(6).toString('hex') }, extensions: { x: randomBytes(6).toString('hex') } }),
      });
      expect(res.json().data).toEqual({ __typename: 'Query' });
      expect(res.headers['x-response-cache']).toBe('bypass');
    }
    expect(await storedResponses(app)).toBe(before);
    // With a token, the same document is kept (one entry, whatever it made up).
    await post(app, '{ __typename }', { token: user2, variables: { v: 'a' } });
    expect((await post(app, '{ __typename }', { token: user2, variables: { v: 'b' } })).cache).toBe('hit');
    expect(await storedResponses(app)).toBe(before + 1);
  });

  run('keeps no response with errors, of a mutation, of introspection, of an untagged read, or for a no-cache request', async () => {
    const notFound = '{ payment(id: "999999") { id } }';
    for (let i = 0; i < 2; i++) {
      const r = await post(app, notFound, { token: user2 });
      expect(r.cache).toBe('bypass');
    }
    const mutation = 'mutation { updateUser(id: "4", input: { name: "Same Name" }) { name } }';
    for (let i = 0; i < 2; i++) expect((await post(app, mutation, { token: admin })).cache).toBe('bypass');
    const introspection = '{ __schema { queryType { name } } }';
    for (let i = 0; i < 2; i++) expect((await post(app, introspection, { token: admin })).cache).toBe('bypass');
    // auditLog reads a table no tag names: executed every time.
    const audit = '{ auditLog(entityType: USER, entityId: "4", first: 5) { nodes { action } } }';
    for (let i = 0; i < 2; i++) {
      const r = await post(app, audit, { token: admin });
      expect(r.body.errors).toBeUndefined();
      expect(r.cache).toBe('bypass');
      expect(r.statements).toBeGreaterThan(0);
    }
    const q = '{ user(id: "4") { name } }';
    const fresh = await post(app, q, { token: admin, headers: { 'cache-control': 'no-cache' } });
    expect(fresh.cache).toBe('bypass');
    // The no-cache request filled nothing: the next plain one is a miss, then a hit.
    expect((await post(app, q, { token: admin })).cache).toBe('miss');
    expect((await post(app, q, { token: admin })).cache).toBe('hit');
  });

  run('never serves a stale answer after a user update: the user, the list, me, and a payment\'s user', async () => {
    const [payment] = await t.sql<{ id: number }>('select id from payments where user_id = 2 order by id limit 1');
    const reads = [
      { query: '{ user(id: "2") { email } }', token: admin },
      { query: '{ users(first: 10) { nodes { id email } } }', token: admin },
      { query: '{ me { email } }', token: user2 },
      // As an ADMIN: the viewer's own row is not what this read depends on.
      { query: `{ payment(id: "${payment!.id}") { user { email } } }`, token: admin },
      { query: '{ paymentHistory(first: 5) { nodes { user { email } } } }', token: user2 },
      { query: '{ payments(first: 50) { nodes { id user { email } } } }', token: admin },
    ];
    for (const r of reads) await warm(app, r.query, r.token);
    const email = `changed-${randomBytes(3).toString('hex')}@example.com`;
    const updated = await post(app, `mutation { updateUser(id: "2", input: { email: "${email}" }) { email } }`, { token: user2 });
    expect(updated.body.data!.updateUser.email).toBe(email);
    for (const r of reads) {
      const after = await post(app, r.query, { token: r.token });
      expect(after.cache, r.query).toBe('miss');
      expect(JSON.stringify(after.body.data), r.query).toContain(email);
      expect(after.body.data).toEqual(await truth(app, r.query, r.token));
    }
  });

  run('never serves a stale answer after createPayment, cancelPayment, refundPayment and webhooks', async () => {
    const reads = [
      { query: '{ paymentHistory(first: 100) { totalCount nodes { id status amountRefunded } } }', token: user3 },
      { query: '{ user(id: "3") { paymentCount payments(first: 100) { nodes { id status amountRefunded } } paymentStats { status count } } }', token: user3 },
      { query: '{ payments(first: 100, userId: "3") { totalCount nodes { id status } } }', token: admin },
      { query: '{ payments(first: 100) { totalCount nodes { id status amountRefunded } } }', token: admin },
    ];
    const check = async (write: string) => {
      for (const r of reads) {
        const after = await post(app, r.query, { token: r.token });
        expect(after.body.data, `${write}: ${r.query}`).toEqual(await truth(app, r.query, r.token));
      }
    };
    const warmAll = async () => {
      for (const r of reads) await warm(app, r.query, r.token);
    };

    await warmAll();
    const created = await post(app, 'mutation($input: CreatePaymentInput!) { createPayment(input: $input) { payment { id stripePaymentId } } }', {
      token: user3,
      variables: { input: { amount: 4200, currency: 'usd', idempotencyKey: `rc-${randomBytes(4).toString('hex')}` } },
    });
    const { id, stripePaymentId } = created.body.data!.createPayment.payment;
    const history = await post(app, reads[0]!.query, { token: user3 });
    expect(history.cache).toBe('miss');
    expect(history.body.data!.paymentHistory.nodes.map((n: { id: string }) => n.id)).toContain(id);
    await check('createPayment');

    await warmAll();
    expect((await deliver(app, signedEvent('payment_intent.succeeded', { id: stripePaymentId, object: 'payment_intent' }))).statusCode).toBe(200);
    const completed = await post(app, reads[0]!.query, { token: user3 });
    expect(completed.body.data!.paymentHistory.nodes.find((n: { id: string }) => n.id === id).status).toBe('COMPLETED');
    await check('payment_intent.succeeded webhook');

    await warmAll();
    const refunded = await post(app, `mutation { refundPayment(id: "${id}", amount: 1000) { id } }`, { token: admin });
    expect(refunded.body.errors).toBeUndefined();
    await check('refundPayment');
    await warmAll();
    expect((await deliver(app, signedEvent('charge.refunded', { id: `ch_${stripePaymentId}`, object: 'charge', payment_intent: stripePaymentId, amount: 4200, amount_refunded: 1000, refunded: false }))).statusCode).toBe(200);
    const afterRefund = await post(app, reads[0]!.query, { token: user3 });
    expect(afterRefund.body.data!.paymentHistory.nodes.find((n: { id: string }) => n.id === id).amountRefunded).toBe(1000);
    await check('charge.refunded webhook');

    // A payment Stripe never heard of is canceled at once.
    const [unlinked] = await t.sql<{ id: number }>(
      `insert into payments (user_id, amount, currency, status, created_at, updated_at) values (3, 700, 'usd', 'PENDING', now(), now()) returning id`,
    );
    // (Written behind the API's back: nothing was cached with it yet, so nothing is stale; warm after.)
    await app.cache.invalidate(['payments:user:3', 'payments']);
    await warmAll();
    const canceled = await post(app, `mutation { cancelPayment(id: "${unlinked!.id}") { status } }`, { token: user3 });
    expect(canceled.body.data!.cancelPayment.status).toBe('CANCELED');
    const afterCancel = await post(app, reads[0]!.query, { token: user3 });
    expect(afterCancel.body.data!.paymentHistory.nodes.find((n: { id: string }) => n.id === String(unlinked!.id)).status).toBe('CANCELED');
    await check('cancelPayment');
  });

  run('a deactivated viewer gets 401, not their cached answer', async () => {
    const q = '{ me { email } }';
    const user4 = await t.userToken(4);
    await warm(app, q, user4);
    await post(app, 'mutation { updateUser(id: "4", input: { isActive: false }) { id } }', { token: admin });
    const after = await post(app, q, { token: user4 });
    expect(after.status).toBe(401);
    expect(after.body.errors![0]!.extensions!.code).toBe('UNAUTHENTICATED');
  });
});

describe.skipIf(!redisUrl)('response cache across two instances sharing Redis', () => {
  let t: TestApp;
  let stripe: StripeDouble;
  let b: App;
  let admin: string;
  const proxies: TcpProxy[] = [];

  beforeAll(async () => {
    stripe = await StripeDouble.start();
    t = await createTestApp({
      seed: { users: 5, paymentsPerUser: 3 },
      env: stripeEnvFor(stripe, { REDIS_URL: redisUrl, CACHE_ENABLED: 'true', CACHE_NAMESPACE: `rc2${randomBytes(4).toString('hex')}` }),
    });
    b = await createApp(t.config);
    admin = await t.adminToken();
  });
  afterAll(async () => {
    for (const p of proxies) await p.cut();
    await b?.close();
    await t?.close();
    await stripe?.close();
  });

  it('an entry filled on one instance is a hit on the other, and a write on either makes it a miss on both', async () => {
    const q = '{ user(id: "2") { email payments(first: 10) { nodes { id status } } } }';
    expect((await post(t.app, q, { token: admin })).cache).toBe('miss');
    expect((await post(b, q, { token: admin })).cache).toBe('hit');

    const email = `b-${randomBytes(3).toString('hex')}@example.com`;
    await post(b, `mutation { updateUser(id: "2", input: { email: "${email}" }) { id } }`, { token: admin });
    const onA = await post(t.app, q, { token: admin });
    expect(onA.cache).toBe('miss');
    expect(onA.body.data!.user.email).toBe(email);

    // A webhook on B completes a payment; A's cached answer (filled again just now) is not served.
    expect((await post(b, q, { token: admin })).cache).toBe('hit');
    // (A payment written behind the API's back, and its tags bumped as a write would.)
    const [pending] = await t.sql<{ id: number; stripe_payment_id: string }>(
      `insert into payments (user_id, amount, currency, status, stripe_payment_id, created_at, updated_at)
       values (2, 1500, 'usd', 'PENDING', 'pi_rc2_pending', now(), now()) returning id, stripe_payment_id`,
    );
    await b.cache.invalidate(['payments:user:2', 'payments']);
    expect((await post(t.app, q, { token: admin })).cache).toBe('miss');
    const delivery = signedEvent('payment_intent.succeeded', { id: pending!.stripe_payment_id, object: 'payment_intent' });
    expect((await deliver(b, delivery)).statusCode).toBe(200);
    const afterWebhook = await post(t.app, q, { token: admin });
    expect(afterWebhook.cache).toBe('miss');
    expect(afterWebhook.body.data!.user.payments.nodes.find((n: { id: string }) => n.id === String(pending!.id)).status).toBe('COMPLETED');
  });

  it('two builds on one Redis (a rolling deploy) never read each other\'s entries, and a write on either invalidates both', async () => {
    const next = await createApp(t.config, { buildId: 'next-build' });
    try {
      const q = '{ user(id: "5") { email payments(first: 2) { nodes { id } } } }';
      await warm(t.app, q, admin);
      // The other build: neither the whole response nor the query-cache rows are the old build's.
      const before = next.sqlTotals.attributed;
      const onNext = await post(next, q, { token: admin });
      expect(onNext.cache).toBe('miss');
      expect(next.sqlTotals.attributed - before).toBeGreaterThan(0);
      expect((await warm(next, q, admin)).body.data).toEqual(onNext.body.data);
      // Tag versions are every build's: a write through the new build is seen by the old one's entries.
      const email = `next-${randomBytes(3).toString('hex')}@example.com`;
      await post(next, `mutation { updateUser(id: "5", input: { email: "${email}" }) { id } }`, { token: admin });
      const onOld = await post(t.app, q, { token: admin });
      expect(onOld.cache).toBe('miss');
      expect(onOld.body.data!.user.email).toBe(email);
      expect(next.build).toBe('next-build');
      expect(t.app.build).not.toBe('next-build');
    } finally {
      await next.close();
    }
  });

  it('a write that commits while a response is being filled never leaves that response current', async () => {
    // A reaches Redis through a proxy that holds back what A sends once it has read the row (its write
    // of the query-cache entry, then everything after it), so the write below commits (on B) after A
    // read the database and before A stores anything of what it read.
    const proxy = await TcpProxy.start(redisPort);
    proxies.push(proxy);
    const a = await createApp({ ...t.config, redisUrl: `redis://127.0.0.1:${proxy.port}` });
    try {
      const q = '{ user(id: "3") { name } }';
      // The viewer's state first (so the held SET is the row's).
      await post(a, '{ __typename }', { token: admin });
      // (Entry keys carry the build: `<namespace>::q:<build>:userById:...`.)
      const held = proxy.holdNext(/\r\nSET\r\n\$\d+\r\n[^\r]*:q:[^:\r]+:userById/);
      const filling = post(a, q, { token: admin });
      await held;
      await post(b, 'mutation { updateUser(id: "3", input: { name: "Written During The Fill" }) { id } }', { token: admin });
      proxy.release();
      const first = await filling;
      expect(first.cache).toBe('miss');
      expect(first.body.data!.user.name).not.toBe('Written During The Fill');
      // The entry A stored carries the version from before the write: it is never served.
      const next = await post(a, q, { token: admin });
      expect(next.cache).toBe('miss');
      expect(next.body.data!.user.name).toBe('Written During The Fill');
      expect((await post(b, q, { token: admin })).body.data!.user.name).toBe('Written During The Fill');
    } finally {
      await a.close();
    }
  });

  it('fails open when Redis is down: answers from PostgreSQL, serves no entry', async () => {
    const proxy = await TcpProxy.start(redisPort);
    proxies.push(proxy);
    const a = await createApp({ ...t.config, redisUrl: `redis://127.0.0.1:${proxy.port}`, cache: { ...t.config.cache, timeoutMs: 200 } });
    try {
      const q = '{ user(id: "4") { email } }';
      await post(a, q, { token: admin });
      expect((await post(a, q, { token: admin })).cache).toBe('hit');
      await proxy.cut();
      const down = await post(a, q, { token: admin });
      expect(down.status).toBe(200);
      expect(down.body.data).toEqual(await truth(b, q, admin));
      expect(down.cache).not.toBe('hit');
      expect(down.statements).toBeGreaterThan(0);
      expect(a.cache.totals.errors).toBeGreaterThan(0);
      // What was read without knowing the tags' versions is not kept: the answer is a bypass.
      expect(down.cache).toBe('bypass');
    } finally {
      await proxy.restore();
      await a.close();
    }
  });
});

describe('response cache settings', () => {
  it('RESPONSE_CACHE_ENABLED=false: no lookups, no header', async () => {
    const t = await createTestApp({ seed: { users: 2, paymentsPerUser: 1 }, env: { CACHE_ENABLED: 'true', RESPONSE_CACHE_ENABLED: 'false' } });
    try {
      const admin = await t.adminToken();
      const q = '{ user(id: "2") { email } }';
      await post(t.app, q, { token: admin });
      const again = await post(t.app, q, { token: admin });
      expect(again.cache).toBeUndefined();
      expect(t.app.responseCache).toBeNull();
    } finally {
      await t.close();
    }
  });

  it('the in-process store keeps at most RESPONSE_CACHE_MAX_MB of bodies, least recently used out first', async () => {
    const t = await createTestApp({ seed: { users: 120, paymentsPerUser: 10 }, env: { CACHE_ENABLED: 'true', RESPONSE_CACHE_MAX_MB: '1', RATE_LIMIT_ADMIN_CAPACITY: '1000000' } }); // 30 answers of ~4,400 points each in well under a second: more than an ADMIN's default budget
    try {
      const admin = await t.adminToken();
      // Each answer is about 93 KB of JSON (some 190 KB as the store counts it): a few pass 1 MB.
      const q = (n: number) => `{ users(first: 100) { nodes { id email payments(first: 10) { nodes { id amount status createdAt } } } } n${n}: __typename }`;
      for (let n = 0; n < 30; n++) expect((await post(t.app, q(n), { token: admin })).cache).toBe('miss');
      const size = t.app.responseCache!.memorySize;
      expect(size.bytes).toBeLessThanOrEqual(1024 * 1024);
      expect(size.entries).toBeGreaterThan(1);
      expect(size.entries).toBeLessThan(30);
      expect((await post(t.app, q(29), { token: admin })).cache).toBe('hit');
      expect((await post(t.app, q(0), { token: admin })).cache).toBe('miss');
    } finally {
      await t.close();
    }
  });
});
