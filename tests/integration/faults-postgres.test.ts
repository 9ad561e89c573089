import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import {
  expectAlive,
  expectAnsweredAndCoded,
  loadTokens,
  prepareDatabase,
  recoveryMs,
  reportFault,
  sleep,
  startLoad,
  startProductionServer,
  type LoadTokens,
} from '../helpers/faults.js';
import { ReplicaCluster } from '../helpers/replica-cluster.js';
import type { ServerProcess } from '../helpers/server-process.js';

const redisUrl = inject('redisUrl');
const USERS = 3000;

/**
 * PostgreSQL misbehaving under a production server (its own process, production defaults: query and
 * response cache on, Redis) while a second process makes load. Each case: every request answered
 * (data, or a coded 503 with Retry-After), no uncoded failure, the process alive and without a
 * process fault, and normal answers again within a stated time after the fault ends.
 */
describe.skipIf(!redisUrl)('PostgreSQL faults under load', () => {
  let db: TestDatabase;
  let server: ServerProcess;
  let tokens: LoadTokens;

  beforeAll(async () => {
    db = await createTestDatabase();
    await prepareDatabase(db.url, { users: USERS, paymentsPerUser: 2 });
    tokens = await loadTokens(40);
    server = await startProductionServer({ DATABASE_URL: db.url, REDIS_URL: redisUrl, CACHE_NAMESPACE: db.name, DB_STATEMENT_TIMEOUT_MS: '400' });
  });
  afterAll(async () => {
    await server?.stop();
    await db?.drop();
  });

  it('a stall past the statement timeout (tables locked for 4 s): coded 503s, the process lives, normal within 1 s', async () => {
    // Request i asks users i, i+1, i+2 (ADMIN): concurrent requests join each other's loads, and the
    // walk through 3,000 users keeps reaching rows no cache holds yet, which the lock stalls.
    const load = startLoad({ url: server.url, scenario: 'overlappingUsers', durationMs: 9000, concurrency: 16, tokens, users: USERS });
    await sleep(2000);
    const locker = new pg.Client({ connectionString: db.url });
    await locker.connect();
    await locker.query('begin');
    await locker.query('lock table users, payments in access exclusive mode');
    await sleep(4000);
    await locker.query('commit');
    const released = Date.now();
    await locker.end();
    const report = await load;

    reportFault('PostgreSQL stalled 4 s (statement timeout 400 ms)', report, recoveryMs(report, released));
    expectAnsweredAndCoded(report, ['SERVICE_UNAVAILABLE']);
    // The stall was real: statements ran out of time, and those requests said so.
    expect(report.byCode.SERVICE_UNAVAILABLE).toBeGreaterThan(0);
    expect(report.ok).toBeGreaterThan(0);
    expect(recoveryMs(report, released)).not.toBeNull();
    expect(recoveryMs(report, released)!).toBeLessThanOrEqual(1000);
    await expectAlive(server);
  });

  it("every server connection killed (pg_terminate_backend) twice: coded 503s at most, normal within 1 s", async () => {
    const load = startLoad({ url: server.url, scenario: 'mixedReads', durationMs: 7000, concurrency: 12, tokens });
    const killer = new pg.Client({ connectionString: db.url });
    await killer.connect();
    let killed = 0;
    for (const at of [2000, 1500]) {
      await sleep(at);
      const { rows } = await killer.query<{ n: number }>(
        'select count(pg_terminate_backend(pid))::int as n from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()',
      );
      killed += rows[0]!.n;
    }
    const done = Date.now();
    await killer.end();
    const report = await load;

    reportFault(`every connection killed twice (${killed} backends)`, report, recoveryMs(report, done));
    expect(killed).toBeGreaterThan(0);
    expectAnsweredAndCoded(report, ['SERVICE_UNAVAILABLE']);
    expect(recoveryMs(report, done)!).toBeLessThanOrEqual(1000);
    await expectAlive(server);
  });
});

describe.skipIf(!redisUrl)('PostgreSQL stopped and started again under load', () => {
  let cluster: ReplicaCluster;
  let server: ServerProcess;
  let tokens: LoadTokens;

  beforeAll(async () => {
    cluster = await ReplicaCluster.start({ replica: false });
    const admin = new pg.Client({ connectionString: cluster.primaryUrl() });
    await admin.connect();
    await admin.query('create database paygraph');
    await admin.end();
    await prepareDatabase(cluster.primaryUrl('paygraph'), { users: 200, paymentsPerUser: 5 });
    tokens = await loadTokens(40);
    server = await startProductionServer({
      DATABASE_URL: cluster.primaryUrl('paygraph'),
      REDIS_URL: redisUrl,
      CACHE_NAMESPACE: `pgrestart${process.pid}${Date.now()}`,
    });
  });
  afterAll(async () => {
    await server?.stop();
    await cluster?.stop();
  });

  it('a real stop of the server for 3 s, then a start: coded 503s meanwhile, the same process serves again within 2 s', async () => {
    // Writes (which no cache can answer) beside reads (which the caches may).
    const load = startLoad({ url: server.url, scenario: 'readYourWrites', durationMs: 10_000, concurrency: 12, tokens, users: 200 });
    await sleep(2000);
    await cluster.stopPrimary('fast');
    const down = Date.now();
    await sleep(3000);
    await cluster.startPrimary();
    const up = Date.now();
    const report = await load;

    reportFault('PostgreSQL stopped 3 s, then started', report, recoveryMs(report, up));
    expectAnsweredAndCoded(report, ['SERVICE_UNAVAILABLE']);
    // While it was down, requests that needed it failed with the code (some were answered by the caches).
    const downBuckets = report.buckets.slice(Math.ceil((down - report.startedAt) / report.bucketMs), Math.floor((up - report.startedAt) / report.bucketMs));
    expect(downBuckets.reduce((n, b) => n + b.failed, 0)).toBeGreaterThan(0);
    expect(report.byCode.SERVICE_UNAVAILABLE).toBeGreaterThan(0);
    expect(recoveryMs(report, up)).not.toBeNull();
    expect(recoveryMs(report, up)!).toBeLessThanOrEqual(2000);
    // Nothing acknowledged was lost, and nothing read back was older than what had been written.
    expect(report.stale).toBe(0);
    const client = new pg.Client({ connectionString: cluster.primaryUrl('paygraph') });
    await client.connect();
    for (const [id, name] of Object.entries(report.lastWritten)) {
      expect((await client.query<{ name: string }>('select name from users where id = $1', [Number(id)])).rows[0]!.name).toBe(name);
    }
    await client.end();
    await expectAlive(server);
  });
});
