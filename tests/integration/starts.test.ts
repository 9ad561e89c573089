import { spawn } from 'node:child_process';
import pg from 'pg';
import { afterEach, describe, expect, inject, it } from 'vitest';
import type { MigrationObject } from '@mikro-orm/core';
import { concurrentIndex, PaygraphMigration } from '../../src/db/migration.js';
import { migrate, MIGRATION_LOCK_KEY } from '../../src/db/orm.js';
import { migrationsList } from '../../src/db/migrations/index.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { startProductionServer, sleep } from '../helpers/faults.js';
import { projectRoot, type ServerProcess } from '../helpers/server-process.js';

const redisUrl = inject('redisUrl');
const databases: TestDatabase[] = [];
const servers: ServerProcess[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.stop();
  for (const d of databases.splice(0)) await d.drop();
});

async function database(): Promise<TestDatabase> {
  const db = await createTestDatabase();
  databases.push(db);
  return db;
}

/** A connection of the test's own, holding a transaction open until `end()`. */
async function holder(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query('begin');
  return client;
}

const migrationsRows = async (db: TestDatabase) => (await db.query<{ name: string }>('select name from mikro_orm_migrations order by id')).map((r) => r.name);

/** Runs one of the npm scripts' entry points (src/scripts/*.ts) as `npm run` does, with `env`. */
function script(name: string, args: string[], env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', `src/scripts/${name}.ts`, ...args], { cwd: projectRoot, env: { PATH: process.env.PATH, ...env } });
  let output = '';
  child.stdout.on('data', (c) => (output += c));
  child.stderr.on('data', (c) => (output += c));
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, output })));
}

describe.skipIf(!redisUrl)('three instances started at once', () => {
  it('migrate one at a time: one applies the pending migrations, the others wait for it, and all serve', { timeout: 120_000 }, async () => {
    const db = await database();
    // A database at its first migration, so three are pending, and the migrations table held
    // locked: every instance reaches its migration at the same moment, when the lock goes.
    await migrate({ databaseUrl: db.url, quiet: true }, undefined, { migrations: { migrationsList: migrationsList.slice(0, 1), snapshot: false, silent: true } });
    const lock = await holder(db.url);
    await lock.query('lock table mikro_orm_migrations in access exclusive mode');
    const starting = [0, 1, 2].map(() =>
      startProductionServer({ DATABASE_URL: db.url, REDIS_URL: redisUrl, CACHE_NAMESPACE: db.name, DB_MIGRATION_LOCK_TIMEOUT_MS: '60000' }),
    );
    // Give all three the time to start: each has asked for the migration lock (the connection that
    // holds or polls for it last ran pg_try_advisory_lock), and the one that got it is blocked on the table.
    const reached = async () =>
      (
        await db.query<{ asked: number; blocked: number }>(
          `select count(*) filter (where query like 'select pg_try_advisory_lock(%')::int as asked, count(*) filter (where wait_event_type = 'Lock')::int as blocked
           from pg_stat_activity where datname = current_database()`,
        )
      )[0]!;
    await expect.poll(reached, { timeout: 60_000, interval: 200 }).toEqual({ asked: 3, blocked: 1 });
    await lock.query('commit');
    await lock.end();
    const started = await Promise.all(starting);
    servers.push(...started);

    expect(await migrationsRows(db)).toEqual(migrationsList.map((m) => m.name));
    const waited = started.filter((s) => /another instance is applying migrations; waiting for it/.test(s.output()));
    expect(waited.length).toBe(2);
    for (const s of started) {
      expect(s.output()).not.toMatch(/failed to start|already exists|duplicate key/);
      const r = await fetch(`${s.url.replace(/\/graphql$/, '')}/readyz`);
      expect(r.status).toBe(200);
    }
  });
});

describe('migrations', () => {
  class SlowMigration extends PaygraphMigration {
    protected override async change(): Promise<void> {
      this.addSql('select pg_sleep(0.6)');
    }
  }
  class TouchUsers extends PaygraphMigration {
    protected override async change(): Promise<void> {
      this.addSql('alter table "users" add column "nickname" text null');
    }
  }
  /** A concurrent index build, after a pause that lets a test line something up beside it. */
  class ConcurrentIndex extends PaygraphMigration {
    protected override readonly transactional = false;
    protected override async change(): Promise<void> {
      this.addSql('select pg_sleep(1)');
      this.addSql('create index concurrently "users_name_index" on "users" ("name")');
    }
  }
  const list = (...extra: MigrationObject[]) => ({ migrations: { migrationsList: [...migrationsList, ...extra], snapshot: false, silent: true } });

  it('run with no statement timeout, whatever the server\'s (a long index build is not cut short)', async () => {
    const db = await database();
    const applied = await migrate({ databaseUrl: db.url, quiet: true, statementTimeoutMs: 200 }, { lockTimeoutMs: 5000, waitMs: 10_000 }, list({ name: 'Migration99990000000000_slow', class: SlowMigration }));
    expect(applied.at(-1)).toBe('Migration99990000000000_slow');
    // Just over: the same 0.6 s statement on the server's own connection, with its 200 ms, is cancelled.
    const client = new pg.Client({ connectionString: db.url, statement_timeout: 200 } as pg.ClientConfig);
    await client.connect();
    await expect(client.query('select pg_sleep(0.6)')).rejects.toThrow(/statement timeout/);
    await client.end();
  });

  it('give up on a lock held past DB_MIGRATION_LOCK_TIMEOUT_MS, leaving nothing of the failed one, instead of queueing traffic behind them', async () => {
    const db = await database();
    await migrate({ databaseUrl: db.url, quiet: true });
    const reader = await holder(db.url);
    await reader.query('select count(*) from users'); // an open transaction that read users (ACCESS SHARE)
    const started = Date.now();
    await expect(migrate({ databaseUrl: db.url, quiet: true }, { lockTimeoutMs: 300, waitMs: 10_000 }, list({ name: 'Migration99990000000001_touch', class: TouchUsers }))).rejects.toThrow(
      /lock timeout/,
    );
    expect(Date.now() - started).toBeLessThan(5000);
    await reader.query('rollback');
    await reader.end();
    expect(await migrationsRows(db)).not.toContain('Migration99990000000001_touch');
    expect(await db.query("select column_name from information_schema.columns where table_name = 'users' and column_name = 'nickname'")).toEqual([]);
    // Just under: with the reader gone, the same migration applies.
    await migrate({ databaseUrl: db.url, quiet: true }, { lockTimeoutMs: 300, waitMs: 10_000 }, list({ name: 'Migration99990000000001_touch', class: TouchUsers }));
    expect(await migrationsRows(db)).toContain('Migration99990000000001_touch');
  });

  it('build an index concurrently outside a transaction: writes go on while it waits, and it is applied once the old transaction ends', async () => {
    const db = await database();
    await migrate({ databaseUrl: db.url, quiet: true });
    // A transaction with a snapshot older than the build (a long report), which the build must wait for.
    const old = new pg.Client({ connectionString: db.url });
    await old.connect();
    await old.query('begin isolation level repeatable read');
    await old.query('select count(*) from users');
    const migrating = migrate({ databaseUrl: db.url, quiet: true }, { lockTimeoutMs: 30_000, waitMs: 10_000 }, list({ name: 'Migration99990000000002_index', class: ConcurrentIndex }));
    let settled = false;
    void migrating.then(() => (settled = true), () => (settled = true));
    await expect.poll(async () => (await db.query<{ n: number }>("select count(*)::int as n from pg_stat_activity where query like 'create index concurrently%' and wait_event_type = 'Lock'"))[0]!.n, { timeout: 10_000 }).toBe(1);
    // The build is waiting; a write to the table it indexes is not (a plain CREATE INDEX would block it).
    const writer = new pg.Client({ connectionString: db.url, statement_timeout: 2000 } as pg.ClientConfig);
    await writer.connect();
    await writer.query("insert into users (email, name) values ('beside@paygraph.dev', 'Beside')");
    await writer.end();
    expect(settled).toBe(false);
    await old.query('commit');
    await old.end();
    expect((await migrating).at(-1)).toBe('Migration99990000000002_index');
    expect(await db.query("select i.indisvalid as valid from pg_index i join pg_class c on c.oid = i.indexrelid where c.relname = 'users_name_index'")).toEqual([{ valid: true }]);
  });

  it('wait for the lock by asking again, not in a statement: an instance waiting does not hold up the other\'s concurrent index build', async () => {
    const db = await database();
    await migrate({ databaseUrl: db.url, quiet: true });
    const lines: string[] = [];
    const started = Date.now();
    const first = migrate({ databaseUrl: db.url, quiet: true }, { lockTimeoutMs: 5000, waitMs: 20_000 }, list({ name: 'Migration99990000000002_index', class: ConcurrentIndex }));
    await sleep(300);
    // The second arrives while the first one's build is still to come, and waits for it.
    const second = migrate({ databaseUrl: db.url, quiet: true }, { lockTimeoutMs: 5000, waitMs: 20_000, log: (l) => lines.push(l) }, list({ name: 'Migration99990000000002_index', class: ConcurrentIndex }));
    expect((await first).at(-1)).toBe('Migration99990000000002_index');
    // Blocked in a statement, the second would hold a snapshot the build waits for: lock timeout at 5 s.
    expect(Date.now() - started).toBeLessThan(4000);
    expect(await second).toEqual([]);
    expect(lines).toEqual(['another instance is applying migrations; waiting for it (at most 20000 ms)']);
  });

  it('mend a concurrent index build that failed half-way: the invalid index left behind is dropped and built again', async () => {
    const db = await database();
    await migrate({ databaseUrl: db.url, quiet: true });
    // What a build cut short leaves: the index, marked invalid (a unique build over duplicates fails so).
    await db.query("insert into users (email, name) values ('one@paygraph.dev', 'Twin'), ('two@paygraph.dev', 'Twin')");
    await expect(db.query('create unique index concurrently "users_name_index" on "users" ("name")')).rejects.toThrow(/could not create unique index/);
    expect(await db.query("select i.indisvalid as valid from pg_index i join pg_class c on c.oid = i.indexrelid where c.relname = 'users_name_index'")).toEqual([{ valid: false }]);
    class MendedIndex extends PaygraphMigration {
      protected override readonly transactional = false;
      protected override async change(): Promise<void> {
        for (const sql of await concurrentIndex(this, 'users_name_index', '"users" ("name")')) this.addSql(sql);
      }
    }
    await migrate({ databaseUrl: db.url, quiet: true }, undefined, list({ name: 'Migration99990000000003_mended', class: MendedIndex }));
    expect(await db.query("select i.indisvalid as valid, i.indisunique as unique from pg_index i join pg_class c on c.oid = i.indexrelid where c.relname = 'users_name_index'")).toEqual([{ valid: true, unique: false }]);
  });

  it('wait for another instance\'s migrations at most DB_MIGRATION_WAIT_MS, then refuse to start, saying so', async () => {
    const db = await database();
    const other = await holder(db.url);
    await other.query('select pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
    const lines: string[] = [];
    await expect(migrate({ databaseUrl: db.url, quiet: true }, { lockTimeoutMs: 1000, waitMs: 1000, log: (l) => lines.push(l) })).rejects.toThrow(
      /another instance's migrations did not finish within 1000 ms \(DB_MIGRATION_WAIT_MS\)/,
    );
    expect(lines).toEqual(['another instance is applying migrations; waiting for it (at most 1000 ms)']);
    await other.query('commit');
    await other.end();
    await migrate({ databaseUrl: db.url, quiet: true }, { lockTimeoutMs: 1000, waitMs: 1000 });
    expect(await migrationsRows(db)).toEqual(migrationsList.map((m) => m.name));
  });
});

describe('the scripts take the settings they use', () => {
  it('npm run db:migrate runs in production with the database alone (no JWT_SECRET, no METRICS_TOKEN, no Redis)', async () => {
    const db = await database();
    const { code, output } = await script('migrate', [], { NODE_ENV: 'production', DATABASE_URL: db.url });
    expect(output).toContain('migrations applied: Migration20261129000000_initial');
    expect(code).toBe(0);
    // The server, with the same settings, is refused and says why.
    const server = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], { cwd: projectRoot, env: { PATH: process.env.PATH, NODE_ENV: 'production', DATABASE_URL: db.url } });
    let out = '';
    server.stderr.on('data', (c) => (out += c));
    server.stdout.on('data', (c) => (out += c));
    expect(await new Promise((resolve) => server.on('exit', resolve))).toBe(1);
    expect(out).toMatch(/JWT_SECRET: is required in production/);
  });

  it('npm run db:seed is not cut short by the server\'s statement timeout: it waits out a lock held 11 s (the old fixed 10 s failed)', { timeout: 60_000 }, async () => {
    const db = await database();
    await migrate({ databaseUrl: db.url, quiet: true });
    const lock = await holder(db.url);
    await lock.query('lock table users in share mode'); // writes to users wait for it
    const seeding = script('seed', ['--users', '20', '--payments', '2'], { DATABASE_URL: db.url, DB_STATEMENT_TIMEOUT_MS: '200' });
    await sleep(11_000);
    await lock.query('commit');
    await lock.end();
    const { code, output } = await seeding;
    expect(output).toMatch(/seeded 20 users and 40 payments/);
    expect(code).toBe(0);
    // Its own setting, when given, is the bound: the same wait with --statement-timeout-ms 300 fails.
    const again = await holder(db.url);
    await again.query('lock table users in share mode');
    const bounded = await script('seed', ['--users', '5', '--payments', '1', '--statement-timeout-ms', '300'], { DATABASE_URL: db.url });
    await again.query('commit');
    await again.end();
    expect(bounded.code).not.toBe(0);
    expect(bounded.output).toMatch(/statement timeout/);
  });
});

describe('SINGLE_INSTANCE=true', () => {
  it('refuses a second instance on the same database, naming the first; a replacement starts once the first has stopped', { timeout: 120_000 }, async () => {
    const db = await database();
    const env = { DATABASE_URL: db.url, SINGLE_INSTANCE: 'true' };
    const first = await startProductionServer(env);
    servers.push(first);
    await expect(startProductionServer(env)).rejects.toThrow(/exited early with 1[\s\S]*cannot start: SINGLE_INSTANCE=true, but another instance \(.+:\d+:[0-9a-f]+\) is running on this database/);
    // The first is untouched.
    expect((await fetch(`${first.url.replace(/\/graphql$/, '')}/readyz`)).status).toBe(200);
    expect(await first.stop()).toBe(0);
    servers.splice(servers.indexOf(first), 1);
    const replacement = await startProductionServer(env);
    servers.push(replacement);
    expect((await fetch(`${replacement.url.replace(/\/graphql$/, '')}/readyz`)).status).toBe(200);
  });
});
