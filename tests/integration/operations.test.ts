import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/test-app.js';
import { freePort } from '../../src/db/embedded.js';
import { isDatabaseUnavailable } from '../../src/core/db-errors.js';

const redisUrl = inject('redisUrl');
const METRICS_TOKEN = 'metrics-token-0123456789';

describe('health, readiness and metrics', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp({
      seed: { users: 3, paymentsPerUser: 2 },
      env: { CACHE_ENABLED: 'true', METRICS_TOKEN, DB_STATEMENT_TIMEOUT_MS: '300', ...(redisUrl ? { REDIS_URL: redisUrl } : {}) },
    });
  });
  afterAll(async () => t?.close());

  const get = (url: string, headers: Record<string, string> = {}) => t.app.fastify.inject({ method: 'GET', url, headers });

  it('answers /healthz without I/O', async () => {
    const before = t.app.sqlTotals.unattributed;
    const r = await get('/healthz');
    expect(r.statusCode).toBe(200);
    expect(r.json()).toEqual({ status: 'ok' });
    expect(t.app.sqlTotals.unattributed).toBe(before);
  });

  it('answers /readyz with PostgreSQL (and Redis when configured) checked', async () => {
    const r = await get('/readyz');
    expect(r.statusCode).toBe(200);
    expect(r.json()).toEqual({ status: 'ready', checks: { postgres: 'ok', ...(redisUrl ? { redis: 'ok', limits: 'ok' } : {}) }, build: t.app.build });
  });

  it('needs the bearer token for /metrics when METRICS_TOKEN is set', async () => {
    expect((await get('/metrics')).statusCode).toBe(401);
    expect((await get('/metrics', { authorization: 'Bearer wrong' })).statusCode).toBe(401);
    expect((await get('/metrics', { authorization: `Bearer ${METRICS_TOKEN}` })).statusCode).toBe(200);
  });

  it('exports operations by name and outcome, SQL statements per operation, cache, pool and process metrics', async () => {
    const token = await t.adminToken();
    await t.gql('query Warm { __typename }', { token }); // the viewer's state is cached from here on
    await t.gql('query UsersPage { users(first: 2) { nodes { id paymentCount } } }', { token });
    await t.gql('query UsersPage { users(first: 2) { nodes { id paymentCount } } }', { token });
    await t.gql('query Forbidden { users { nodes { id } } }', { token: await t.userToken(2) });
    const text = (await get('/metrics', { authorization: `Bearer ${METRICS_TOKEN}` })).body;
    expect(text).toMatch(/^graphql_operations_total\{operation="UsersPage",outcome="ok"\} 2$/m);
    expect(text).toMatch(/^graphql_operations_total\{operation="Forbidden",outcome="error"\} 1$/m);
    expect(text).toMatch(/^graphql_operation_duration_seconds_count\{operation="UsersPage",outcome="ok"\} 2$/m);
    // First run: the users page and the count batch; second run: answered by the response cache.
    expect(text).toMatch(/^graphql_operation_sql_statements_sum\{operation="UsersPage"\} 2$/m);
    expect(text).toMatch(/^response_cache_requests_total\{result="hit"\} 1$/m);
    expect(text).toMatch(/^query_cache_hits_total \d+$/m);
    expect(text).toMatch(/^query_cache_misses_total [1-9]\d*$/m);
    expect(text).toMatch(/^db_pool_connections_max 5$/m);
    expect(text).toMatch(/^db_pool_connections_used \d+$/m);
    expect(text).toMatch(/^process_cpu_user_seconds_total /m);
  });

  it('bounds statements with DB_STATEMENT_TIMEOUT_MS, and a timeout counts as the database being unavailable', async () => {
    const em = t.app.orm.em.fork();
    const [row] = await em.getConnection().execute('show statement_timeout');
    expect(row).toEqual({ statement_timeout: '300ms' });
    const error = await em.getConnection().execute('select pg_sleep(2)').catch((e: unknown) => e);
    expect(isDatabaseUnavailable(error)).toBe(true);
    expect(isDatabaseUnavailable(new Error('duplicate key value violates unique constraint'))).toBe(false);
  });

  it('says 503 draining once shutdown begins, while still serving requests', async () => {
    t.app.beginDrain();
    const r = await get('/readyz');
    expect(r.statusCode).toBe(503);
    expect(r.json().status).toBe('draining');
    expect((await t.gql('{ me { id } }', { token: await t.adminToken() })).body.data).toEqual({ me: { id: '1' } });
  });
});

describe('readiness with Redis away', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp({ env: { CACHE_ENABLED: 'true', REDIS_URL: `redis://127.0.0.1:${await freePort()}`, CACHE_TIMEOUT_MS: '100' } });
  });
  afterAll(async () => t?.close());

  it('stays 200 but says degraded, naming Redis: the cache fails open and requests are still served', async () => {
    const r = await t.app.fastify.inject({ method: 'GET', url: '/readyz' });
    expect(r.statusCode).toBe(200);
    const body = r.json();
    expect(body.status).toBe('degraded');
    expect(body.checks.postgres).toBe('ok');
    expect(body.checks.redis).not.toBe('ok');
  });
});
