import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { createTestApp, postTo, type Posted, type TestApp } from '../helpers/test-app.js';
import { createApp, type App } from '../../src/app.js';
import { RedisProcess, hasRedisServer } from '../helpers/redis-server.js';
import { sleep, subscribeWith, wsClient } from '../helpers/ws-client.js';
import WebSocket from 'ws';

const redisUrl = process.env.TEST_REDIS_URL;

/** `me { id email }`: 3 points asked, 3 used (no list). */
const ME = '{ me { id email } }';
/**
 * 5 points asked and used by a user with one payment, under a name of its own (never a response-cache
 * hit of another, when the caches are on); its page needs a statement when they are off.
 */
const me = (n: number) => `{ m${n}: me { id payments(first: 1) { nodes { id } } } }`;
let seq = 0;
/** A page of 10 asked (1 + 1 + 10 x 2 = 22 points); a user with 3 payments uses 1 + 1 + 1 + 3 = 6. */
const MY_PAGE = '{ me { payments(first: 10) { nodes { id } } } }';

/** One POST /graphql as a client at `address` sends it. */
const post = (app: App, query: string, options: { token?: string; address?: string; headers?: Record<string, string> } = {}): Promise<Posted> =>
  postTo(app, query, { token: options.token, headers: options.headers, remoteAddress: options.address });

/** Every statement the instance has run, attributed to a request or not. */
const statementsRun = (app: App) => app.sqlTotals.attributed + app.sqlTotals.unattributed;

const code = (a: Posted) => a.body.errors?.[0]?.extensions?.code;

/** Polls until `check` holds (the unused points of a response are given back after it is sent). */
async function eventually(check: () => Promise<boolean>, ms = 2000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await sleep(20);
  }
}

describe('cost budgets on one instance (memory store)', () => {
  let t: TestApp;
  let user2: string;
  beforeAll(async () => {
    t = await createTestApp({
      seed: { users: 3, paymentsPerUser: 3 },
      env: { RATE_LIMIT_CAPACITY: '100', RATE_LIMIT_RESTORE_RATE: '0.01', RATE_LIMIT_ANONYMOUS_CAPACITY: '3', RATE_LIMIT_ANONYMOUS_RESTORE_RATE: '0.01' },
    });
    user2 = await t.userToken(2);
  });
  afterAll(async () => t?.close());

  it('every response carries extensions.cost (Shopify names) and x-ratelimit-* headers; a short page gives back what it did not use', async () => {
    const first = await post(t.app, MY_PAGE, { token: user2 });
    expect(first.status).toBe(200);
    expect(first.body.data!.me.payments.nodes).toHaveLength(3);
    expect(first.body.extensions!.cost).toEqual({
      requestedQueryCost: 22,
      actualQueryCost: 6,
      throttleStatus: { maximumAvailable: 100, currentlyAvailable: 94, restoreRate: 0.01 },
    });
    expect(first.headers).toMatchObject({ 'x-ratelimit-limit': '100', 'x-ratelimit-remaining': '94', 'x-ratelimit-used': '6' });
    const reset = Number(first.headers['x-ratelimit-reset']);
    // 6 points at 0.01 a second: full again in 600 s.
    expect(reset - Math.ceil(Date.now() / 1000)).toBeGreaterThanOrEqual(598);
    expect(reset - Math.ceil(Date.now() / 1000)).toBeLessThanOrEqual(601);
    // The 16 unused points went back (after the response was sent): the next one starts from 94, not 78.
    await sleep(50);
    expect((await post(t.app, ME, { token: user2 })).body.extensions!.cost.throttleStatus.currentlyAvailable).toBe(91);
  });

  it('a mutation costs RATE_LIMIT_MUTATION_COST more per root field', async () => {
    const r = await post(t.app, `mutation { updateUser(id: 2, input: { name: "Budget" }) { id } }`, { token: user2 });
    expect(r.body.errors).toBeUndefined();
    expect(r.body.extensions!.cost).toMatchObject({ requestedQueryCost: 12, actualQueryCost: 12 });
  });

  it('an anonymous client is limited by its address: 3 pass, the 4th is THROTTLED with nothing run, another address still passes', async () => {
    for (let i = 0; i < 3; i++) {
      const ok = await post(t.app, '{ __typename }', { address: '10.0.0.1' });
      expect(ok.status).toBe(200);
      expect(ok.body.extensions!.cost.requestedQueryCost).toBe(1);
    }
    const totals = statementsRun(t.app);
    const refused = await post(t.app, '{ __typename }', { address: '10.0.0.1' });
    expect(refused.status).toBe(429);
    expect(code(refused)).toBe('THROTTLED');
    expect(refused.body.data).toBeUndefined();
    expect(refused.headers['retry-after']).toBe(String(refused.body.errors![0]!.extensions!.retryAfterSeconds));
    expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(refused.body.extensions!.cost).toMatchObject({ requestedQueryCost: 1, actualQueryCost: null, throttleStatus: { maximumAvailable: 3 } });
    expect(refused.statements).toBe(0);
    expect(statementsRun(t.app)).toBe(totals);
    // Without trusted proxies, X-Forwarded-For is the client's own text: it changes nothing.
    const forged = await post(t.app, '{ __typename }', { address: '10.0.0.1', headers: { 'x-forwarded-for': '203.0.113.77' } });
    expect(forged.status).toBe(429);
    expect(code(forged)).toBe('THROTTLED');
    expect((await post(t.app, '{ __typename }', { address: '10.0.0.2' })).status).toBe(200);
    const metrics = await t.app.fastify.inject({ method: 'GET', url: '/metrics' });
    expect(metrics.body).toMatch(/^rate_limit_refusals_total\{limit="cost"\} 2$/m);
  });

  it('an operation that costs more than its budget can ever hold is refused as too expensive, one within it runs', async () => {
    const over = await post(t.app, '{ payments(first: 49) { nodes { id } } }', { token: user2 }); // 1 + 49 x 2 = 99 < 100
    expect(code(over)).not.toBe('GRAPHQL_VALIDATION_FAILED');
    const tooBig = await post(t.app, '{ payments(first: 50) { nodes { id } } }', { token: user2 }); // 101 > 100
    expect(code(tooBig)).toBe('GRAPHQL_VALIDATION_FAILED');
    expect(tooBig.body.errors![0]!.message).toBe('Query is too expensive: cost 101 is over the limit of 100 (lists count as many times as their "first")');
  });
});

describe('trusted proxies', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp({ env: { TRUSTED_PROXIES: '1', RATE_LIMIT_ANONYMOUS_CAPACITY: '2', RATE_LIMIT_ANONYMOUS_RESTORE_RATE: '0.01' } });
  });
  afterAll(async () => t?.close());

  it('behind one trusted proxy the client is the address it appended; what the client wrote further left is ignored', async () => {
    const viaProxy = (forwardedFor: string) => post(t.app, '{ __typename }', { address: '10.9.9.9', headers: { 'x-forwarded-for': forwardedFor } });
    expect((await viaProxy('198.51.100.1')).status).toBe(200);
    // The client forges an address; the proxy appends the one it saw.
    expect((await viaProxy('203.0.113.5, 198.51.100.1')).status).toBe(200);
    const third = await viaProxy('203.0.113.6, 198.51.100.1');
    expect(third.status).toBe(429);
    expect(code(third)).toBe('THROTTLED');
    // Another client behind the same proxy has its own budget.
    expect((await viaProxy('198.51.100.2')).status).toBe(200);
  });
});

describe('a response-cache hit costs RATE_LIMIT_CACHED_COST', () => {
  let t: TestApp;
  let user2: string;
  beforeAll(async () => {
    t = await createTestApp({
      seed: { users: 3, paymentsPerUser: 1 },
      env: { CACHE_ENABLED: 'true', RESPONSE_CACHE_ENABLED: 'true', RATE_LIMIT_CAPACITY: '10', RATE_LIMIT_RESTORE_RATE: '0.01', RATE_LIMIT_CACHED_COST: '2' },
    });
    user2 = await t.userToken(2);
  });
  afterAll(async () => t?.close());

  it('a hit is charged its own small cost and says so; an empty budget refuses a hit too', async () => {
    const miss = await post(t.app, ME, { token: user2 });
    expect(miss.headers['x-response-cache']).toBe('miss');
    expect(miss.body.extensions!.cost).toMatchObject({ requestedQueryCost: 3, actualQueryCost: 3, throttleStatus: { currentlyAvailable: 7 } });
    const hit = await post(t.app, ME, { token: user2 });
    expect(hit.headers['x-response-cache']).toBe('hit');
    expect(hit.body.data).toEqual(miss.body.data);
    expect(hit.body.extensions!.cost).toEqual({ requestedQueryCost: 2, actualQueryCost: 2, throttleStatus: { maximumAvailable: 10, currentlyAvailable: 5, restoreRate: 0.01 } });
    expect(hit.headers['x-ratelimit-remaining']).toBe('5');
    expect((await post(t.app, ME, { token: user2 })).headers['x-response-cache']).toBe('hit'); // 3 left
    expect((await post(t.app, ME, { token: user2 })).headers['x-response-cache']).toBe('hit'); // 1 left
    const refused = await post(t.app, ME, { token: user2 });
    expect(refused.status).toBe(429);
    expect(code(refused)).toBe('THROTTLED');
    expect(refused.headers['retry-after']).toBe(String(refused.body.errors![0]!.extensions!.retryAfterSeconds));
    expect(refused.body.data).toBeUndefined();
  });
});

describe.runIf(redisUrl)('budgets shared by two instances on Redis', () => {
  let a: TestApp;
  let b: App;
  let token: string;
  beforeAll(async () => {
    const env = { REDIS_URL: redisUrl!, RATE_LIMIT_CAPACITY: '12', RATE_LIMIT_RESTORE_RATE: '4' };
    a = await createTestApp({ seed: { users: 3, paymentsPerUser: 1 }, env });
    b = await createApp(a.config);
    token = await a.userToken(2);
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
  });

  it('a budget spent on A is refused on B (429, THROTTLED, Retry-After, no SQL), and restored at the stated rate', async () => {
    for (let i = 0; i < 2; i++) {
      const ok = await post(a.app, me(++seq), { token });
      expect(ok.status).toBe(200);
      expect(ok.body.extensions!.cost).toMatchObject({ requestedQueryCost: 5, actualQueryCost: 5 });
    }
    // 12 - 10 = about 2 points left (plus 4 a second since): B refuses the next 5.
    const statements = statementsRun(b);
    const refused = await post(b, me(++seq), { token });
    expect(refused.status).toBe(429);
    expect(code(refused)).toBe('THROTTLED');
    const wait = Number(refused.headers['retry-after']);
    expect(wait).toBe(1);
    expect(refused.body.errors![0]!.message).toMatch(/^Throttled: this operation costs 5 points and \d of 12 are available \(4 restored per second\); retry in 1 s$/);
    expect(refused.statements).toBe(0);
    expect(statementsRun(b)).toBe(statements);
    // Restored at 4 points a second: after Retry-After it passes, on either instance.
    await sleep(wait * 1000);
    const after = await post(b, me(++seq), { token });
    expect(after.status).toBe(200);
    expect(after.body.data).toEqual({ [`m${seq}`]: { id: '2', payments: { nodes: [{ id: expect.any(String) }] } } });
  });
});

describe.runIf(hasRedisServer())('the shared store away: local budgets, then shared again', () => {
  let redis: RedisProcess;
  let a: TestApp;
  let b: App;
  let token: string;
  beforeAll(async () => {
    redis = await RedisProcess.start();
    const env = { REDIS_URL: redis.url, CACHE_NAMESPACE: `limits-${randomUUID()}`, RATE_LIMIT_CAPACITY: '10', RATE_LIMIT_RESTORE_RATE: '0.01' };
    a = await createTestApp({ seed: { users: 3, paymentsPerUser: 1 }, env });
    b = await createApp(a.config);
    token = await a.userToken(2);
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
    await redis?.stop();
  });

  it('Redis stopped: each instance counts its own budget (still limited), /readyz says degraded; started again: one shared budget', async () => {
    await redis.stop();
    for (let i = 0; i < 2; i++) expect((await post(a.app, me(++seq), { token })).status).toBe(200);
    const local = await post(a.app, me(++seq), { token });
    expect(local.status).toBe(429);
    expect(code(local)).toBe('THROTTLED');
    // B has a budget of its own meanwhile: up to one budget per instance.
    expect((await post(b, me(++seq), { token })).status).toBe(200);
    const ready = await a.app.fastify.inject({ method: 'GET', url: '/readyz' });
    expect(ready.statusCode).toBe(200);
    expect(ready.json().status).toBe('degraded');
    expect(ready.json().checks.limits).toMatch(/^local buckets since .*: the shared store is not answering$/);

    await redis.start();
    // Tried again at most a second after the failure; /readyz's check tries it too.
    await eventually(async () => (await a.app.fastify.inject({ method: 'GET', url: '/readyz' })).json().checks.limits === 'ok', 5000);
    await eventually(async () => (await b.fastify.inject({ method: 'GET', url: '/readyz' })).json().checks.limits === 'ok', 5000);
    for (let i = 0; i < 2; i++) expect((await post(a.app, me(++seq), { token })).status).toBe(200);
    // Shared again: what A spent is gone for B.
    const shared = await post(b, me(++seq), { token });
    expect(shared.status).toBe(429);
    expect(code(shared)).toBe('THROTTLED');
  });

  it('Redis hung: a request is counted locally within the store timeout instead of waiting', async () => {
    redis.pause();
    try {
      const started = performance.now();
      const r = await post(a.app, '{ __typename }', { token });
      expect(performance.now() - started).toBeLessThan(1000);
      // Counted in a fresh local bucket (the shared one is out of reach).
      expect(r.status).toBe(200);
      expect(r.body.extensions!.cost.requestedQueryCost).toBe(1);
    } finally {
      redis.resume();
    }
  });
});

describe('WebSocket budgets: connection attempts per address, subscriptions per viewer', () => {
  let t: TestApp;
  let url: string;
  let user2: string;
  const clients: ReturnType<typeof wsClient>[] = [];
  beforeAll(async () => {
    t = await createTestApp({ seed: { users: 3, paymentsPerUser: 1 }, env: { RATE_LIMIT_WS_CONNECTIONS_PER_MINUTE: '3', RATE_LIMIT_SUBSCRIPTIONS_PER_MINUTE: '2' } });
    await t.app.fastify.listen({ host: '127.0.0.1', port: 0 });
    const address = t.app.fastify.server.address();
    url = `ws://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/graphql`;
    user2 = await t.userToken(2);
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.dispose()));
    await t?.close();
  });

  /** The HTTP answer to a WebSocket upgrade: 101 when accepted, else the refusal's status and Retry-After. */
  const upgrade = (): Promise<{ status: number; retryAfter: string | undefined }> =>
    new Promise((resolve, reject) => {
      const socket = new WebSocket(url, 'graphql-transport-ws');
      socket.on('open', () => {
        socket.close();
        resolve({ status: 101, retryAfter: undefined });
      });
      socket.on('unexpected-response', (_req, res) => {
        resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'] as string | undefined });
        socket.terminate();
      });
      socket.on('error', (err) => reject(err));
    });

  it('3 connection attempts a minute from one address are accepted, the 4th is refused at the upgrade (429, Retry-After)', async () => {
    for (let i = 0; i < 3; i++) expect((await upgrade()).status).toBe(101);
    const refused = await upgrade();
    expect(refused.status).toBe(429);
    // One attempt back takes 20 s at 3 a minute.
    expect(Number(refused.retryAfter)).toBeGreaterThanOrEqual(19);
    expect(Number(refused.retryAfter)).toBeLessThanOrEqual(20);
  });

  it('2 subscriptions a minute per viewer are started, the 3rd is refused THROTTLED with its wait', async () => {
    // A fresh budget of connections for this test's one socket.
    await t.app.limits!.store.give('ws:127.0.0.1', 3, t.app.limits!.settings.connections);
    const client = wsClient(url, user2);
    clients.push(client);
    const first = subscribeWith(client, 'subscription { paymentUpdated { id } }');
    const second = subscribeWith(client, 'subscription { paymentUpdated { id } }');
    for (let i = 0; i < 200 && t.app.realtime.activeSubscriptions < 2; i++) await sleep(10);
    expect(t.app.realtime.activeSubscriptions).toBe(2);
    const third = subscribeWith(client, 'subscription { paymentUpdated { id } }');
    for (let i = 0; i < 200 && third.errors.length === 0; i++) await sleep(10);
    const errors = third.errors[0] as { message: string; extensions: Record<string, unknown> }[];
    expect(errors[0]!.extensions).toMatchObject({ code: 'THROTTLED', retryAfterSeconds: 30 });
    expect(errors[0]!.message).toBe('Throttled: too many subscriptions started; retry in 30 s');
    expect(first.errors).toEqual([]);
    expect(second.errors).toEqual([]);
    expect(t.app.realtime.activeSubscriptions).toBe(2);
  });
});
