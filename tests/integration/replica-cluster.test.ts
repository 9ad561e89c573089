import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { ReplicaCluster } from '../helpers/replica-cluster.js';

/**
 * The harness the read-replica work stands on: a real primary and a real streaming replica, lag made
 * with `pg_wal_replay_pause()`, an outage made by stopping the replica's server. No mock of a replica.
 */
describe('a streaming replica made by the test harness', () => {
  let cluster: ReplicaCluster;
  let primary: pg.Client;
  let replica: pg.Client;

  beforeAll(async () => {
    cluster = await ReplicaCluster.start();
    primary = new pg.Client({ connectionString: cluster.primaryUrl() });
    replica = new pg.Client({ connectionString: cluster.replicaUrl() });
    await primary.connect();
    await replica.connect();
  }, 60_000);
  afterAll(async () => {
    await primary?.end().catch(() => undefined);
    await replica?.end().catch(() => undefined);
    await cluster?.stop();
  });

  /** Waits until the replica has replayed the primary's WAL up to now. */
  async function caughtUp(client: pg.Client): Promise<void> {
    const { rows } = await primary.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn');
    for (let i = 0; i < 100; i++) {
      const { rows: r } = await client.query<{ done: boolean }>('select pg_last_wal_replay_lsn() >= $1::pg_lsn as done', [rows[0]!.lsn]);
      if (r[0]!.done) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error('the replica did not catch up in 5 s');
  }

  it('is a standby that refuses writes and replays what the primary commits', async () => {
    expect((await replica.query('select pg_is_in_recovery() as r')).rows[0].r).toBe(true);
    expect((await primary.query('select pg_is_in_recovery() as r')).rows[0].r).toBe(false);
    await primary.query('create table harness (id int primary key, note text)');
    await primary.query("insert into harness values (1, 'first')");
    await caughtUp(replica);
    expect((await replica.query('select note from harness where id = 1')).rows).toEqual([{ note: 'first' }]);
    await expect(replica.query("insert into harness values (2, 'no')")).rejects.toThrow(/read-only transaction/);
  });

  it('lags for real while replay is paused, and catches up when resumed', async () => {
    await replica.query('select pg_wal_replay_pause()');
    await primary.query("insert into harness values (3, 'while paused')");
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect((await replica.query('select count(*)::int as n from harness where id = 3')).rows[0].n).toBe(0);
    await replica.query('select pg_wal_replay_resume()');
    await caughtUp(replica);
    expect((await replica.query('select note from harness where id = 3')).rows).toEqual([{ note: 'while paused' }]);
  });

  it('can be stopped and started again, and then streams again', async () => {
    await replica.end();
    await cluster.stopReplica();
    const refused = new pg.Client({ connectionString: cluster.replicaUrl(), connectionTimeoutMillis: 1000 });
    await expect(refused.connect()).rejects.toThrow();
    await primary.query("insert into harness values (4, 'during the outage')");
    await cluster.startReplica();
    replica = new pg.Client({ connectionString: cluster.replicaUrl() });
    await replica.connect();
    await caughtUp(replica);
    expect((await replica.query('select note from harness where id = 4')).rows).toEqual([{ note: 'during the outage' }]);
  });
});
