import { createClient } from '@keyv/redis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { expectAlive, expectAnsweredAndCoded, loadTokens, prepareDatabase, recoveryMs, reportFault, sleep, startLoad, startProductionServer, type LoadTokens } from '../helpers/faults.js';
import { hasRedisServer, RedisProcess } from '../helpers/redis-server.js';
import type { ServerProcess } from '../helpers/server-process.js';

/**
 * Redis misbehaving under production servers (own processes, production defaults) while a second
 * process writes users' names and reads them back through every cache, beside list reads. Redis holds
 * caches, invalidations and marks, none of which a request may depend on: every request is answered
 * with data (from PostgreSQL while Redis is away), no read is stale, the processes live.
 */
describe.skipIf(!hasRedisServer())('Redis faults under load', () => {
  let db: TestDatabase;
  let tokens: LoadTokens;
  const cleanups: (() => Promise<unknown>)[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    await prepareDatabase(db.url, { users: 200, paymentsPerUser: 5 });
    tokens = await loadTokens(40);
  });
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  afterAll(async () => {
    await db?.drop();
  });

  async function serverOn(redis: RedisProcess, namespace: string): Promise<ServerProcess> {
    const server = await startProductionServer({ DATABASE_URL: db.url, REDIS_URL: redis.url, CACHE_NAMESPACE: namespace });
    cleanups.push(() => server.stop());
    return server;
  }
  async function redisServer(extraArgs: string[] = []): Promise<RedisProcess> {
    const redis = await RedisProcess.start(undefined, extraArgs);
    cleanups.push(() => redis.stop());
    return redis;
  }
  const readyz = async (server: ServerProcess) => (await (await fetch(`${server.url.replace(/\/graphql$/, '')}/readyz`)).json()) as { status: string };

  it('Redis stopped for 3 s, then started again empty: every request answered with data, nothing stale, normal within 1 s', async () => {
    const redis = await redisServer();
    const server = await serverOn(redis, 'stopped');
    const load = startLoad({ url: server.url, scenario: 'readYourWrites', durationMs: 9000, concurrency: 8, tokens });
    await sleep(2000);
    await redis.stop();
    await sleep(1000);
    // Degraded, not unavailable: every request is still served.
    expect((await readyz(server)).status).toBe('degraded');
    await sleep(2000);
    await redis.start();
    const back = Date.now();
    const report = await load;

    reportFault('Redis stopped 3 s, then started empty', report, recoveryMs(report, back));
    expectAnsweredAndCoded(report, []);
    expect(report.ok).toBe(report.total);
    expect(report.writes).toBeGreaterThan(20);
    expect(report.stale).toBe(0);
    expect(recoveryMs(report, back)!).toBeLessThanOrEqual(1000);
    await expect.poll(async () => (await readyz(server)).status, { timeout: 5000 }).toBe('ready');
    await expectAlive(server);
  });

  it('FLUSHALL twice under load: every request answered with data, nothing stale', async () => {
    const redis = await redisServer();
    const server = await serverOn(redis, 'flushed');
    const load = startLoad({ url: server.url, scenario: 'readYourWrites', durationMs: 7000, concurrency: 8, tokens });
    const client = createClient({ url: redis.url });
    await client.connect();
    for (const at of [2000, 2000]) {
      await sleep(at);
      await client.flushAll();
    }
    await client.close();
    const report = await load;

    reportFault('Redis FLUSHALL twice', report);
    expectAnsweredAndCoded(report, []);
    expect(report.ok).toBe(report.total);
    expect(report.stale).toBe(0);
    await expectAlive(server);
  });

  it('Redis evicting keys (maxmemory 1.2 MB, allkeys-lru) under two instances: answered, nothing stale across instances', async () => {
    const redis = await redisServer(['--maxmemory', '1200kb', '--maxmemory-policy', 'allkeys-lru']);
    const a = await serverOn(redis, 'evicting');
    const b = await serverOn(redis, 'evicting');
    // Writes on A, read back on B; lists on both fill Redis past its memory.
    const load = startLoad({ url: a.url, readUrl: b.url, scenario: 'readYourWrites', durationMs: 8000, concurrency: 10, tokens, users: 200 });
    const report = await load;
    const client = createClient({ url: redis.url });
    await client.connect();
    const evicted = Number(/evicted_keys:(\d+)/.exec(await client.info('stats'))?.[1] ?? 0);
    await client.close();

    reportFault(`Redis evicting (${evicted} keys evicted), write on A, read on B`, report);
    // The fault was real: Redis evicted keys while the load ran.
    expect(evicted).toBeGreaterThan(0);
    expectAnsweredAndCoded(report, []);
    expect(report.ok).toBe(report.total);
    expect(report.writes).toBeGreaterThan(20);
    expect(report.stale).toBe(0);
    await expectAlive(a);
    await expectAlive(b);
  });
});
