import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { expectAlive, expectAnsweredAndCoded, loadTokens, METRICS_TOKEN, prepareDatabase, recoveryMs, reportFault, sleep, startLoad, startProductionServer, type LoadTokens } from '../helpers/faults.js';
import { ReplicaCluster } from '../helpers/replica-cluster.js';
import type { ServerProcess } from '../helpers/server-process.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';

const redisUrl = inject('redisUrl');

async function createDatabase(url: string): Promise<void> {
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  await admin.query('create database paygraph');
  await admin.end();
}

const base = (server: ServerProcess) => server.url.replace(/\/graphql$/, '');
const readyz = async (server: ServerProcess) => (await (await fetch(`${base(server)}/readyz`)).json()) as { status: string; replicas?: { status: string; problem?: string }[] };
const replicaStatements = async (server: ServerProcess) =>
  Number(/^db_statements_total\{target="replica1"\} (\d+)$/m.exec(await (await fetch(`${base(server)}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).text())?.[1] ?? 0);

/**
 * A read replica misbehaving under a production server with DATABASE_REPLICA_URLS, while a second
 * process writes users' names, reads them back and reads lists.
 */
describe.skipIf(!redisUrl)('replica faults under load', () => {
  let cluster: ReplicaCluster;
  let tokens: LoadTokens;

  beforeAll(async () => {
    cluster = await ReplicaCluster.start();
    await createDatabase(cluster.primaryUrl());
    await prepareDatabase(cluster.primaryUrl('paygraph'), { users: 200, paymentsPerUser: 5 });
    tokens = await loadTokens(40);
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it('the replica stopped for 3 s: every request answered with data (from the primary), readiness degraded, back on the replica after', async () => {
    const server = await startProductionServer({
      DATABASE_URL: cluster.primaryUrl('paygraph'),
      DATABASE_REPLICA_URLS: cluster.replicaUrl('paygraph'),
      DATABASE_REPLICA_CHECK_MS: '200',
      REDIS_URL: redisUrl,
      CACHE_NAMESPACE: `replicastop${Date.now()}`,
    });
    try {
      const load = startLoad({ url: server.url, scenario: 'readYourWrites', durationMs: 9000, concurrency: 8, tokens });
      await sleep(2000);
      await cluster.stopReplica();
      await sleep(1000);
      const down = await readyz(server);
      expect(down.status).toBe('degraded');
      expect(down.replicas![0]!.status).toBe('degraded');
      await sleep(2000);
      await cluster.startReplica();
      const report = await load;

      reportFault('replica stopped 3 s', report);
      expectAnsweredAndCoded(report, []);
      expect(report.ok).toBe(report.total);
      expect(report.stale).toBe(0);
      await expect.poll(async () => (await readyz(server)).status, { timeout: 10_000 }).toBe('ready');
      // Reads went back to the replica by themselves.
      const before = await replicaStatements(server);
      await startLoad({ url: server.url, scenario: 'mixedReads', durationMs: 1000, concurrency: 4, tokens });
      expect(await replicaStatements(server)).toBeGreaterThan(before);
      await expectAlive(server);
    } finally {
      await server.stop();
    }
  });

  it('a switchover (the primary stopped, the replica promoted, the address flipped): coded 503s meanwhile, then served by the new primary, nothing acknowledged lost', async () => {
    // DATABASE_URL is an address that follows the primary (as a virtual IP, a DNS name or a pooler does).
    const address = await TcpProxy.start(cluster.primaryPort);
    const server = await startProductionServer({
      DATABASE_URL: `postgresql://postgres@127.0.0.1:${address.port}/paygraph`,
      DATABASE_REPLICA_URLS: cluster.replicaUrl('paygraph'),
      DATABASE_REPLICA_CHECK_MS: '200',
      REDIS_URL: redisUrl,
      CACHE_NAMESPACE: `switchover${Date.now()}`,
    });
    try {
      const load = startLoad({ url: server.url, scenario: 'readYourWrites', durationMs: 10_000, concurrency: 8, tokens });
      await sleep(2500);
      // A clean stop sends the standby all the WAL it has: the promoted replica has every commit.
      await cluster.stopPrimary('fast');
      await cluster.promoteReplica();
      address.retarget(cluster.replicaPort);
      const flipped = Date.now();
      const report = await load;

      reportFault('switchover (primary stopped, replica promoted, address flipped)', report, recoveryMs(report, flipped));
      expectAnsweredAndCoded(report, ['SERVICE_UNAVAILABLE']);
      expect(report.stale).toBe(0);
      expect(recoveryMs(report, flipped)).not.toBeNull();
      expect(recoveryMs(report, flipped)!).toBeLessThanOrEqual(3000);
      // Every name a write had acknowledged is what the new primary holds.
      const promoted = new pg.Client({ connectionString: cluster.replicaUrl('paygraph') });
      await promoted.connect();
      for (const [id, name] of Object.entries(report.lastWritten)) {
        expect((await promoted.query<{ name: string }>('select name from users where id = $1', [Number(id)])).rows[0]!.name).toBe(name);
      }
      await promoted.end();
      // The replica's address now answers as a primary: it left the rotation, and says why.
      const state = await readyz(server);
      expect(state.status).toBe('degraded');
      expect(state.replicas![0]!.problem).toMatch(/not a standby/);
      await expectAlive(server);
    } finally {
      await server.stop();
      await address.cut();
    }
  });
});
