import pg from 'pg';
import type { MigrationObject } from '@mikro-orm/core';
import { MikroORM, type Options } from '@mikro-orm/postgresql';
import { Migrator } from '@mikro-orm/migrations';
import { User } from '../modules/user/user.entity.js';
import { Payment } from '../modules/payment/payment.entity.js';
import { StripeEvent } from '../modules/payment/stripe-event.entity.js';
import { AuditLogEntry } from '../modules/audit/audit.entity.js';
import { StatementTotals, StatsLogger } from '../core/sql-stats.js';
import { migrationsList } from './migrations/index.js';
import type { MigrationSession } from './migration.js';

export interface OrmSettings {
  databaseUrl: string;
  poolMax?: number;
  /** Print every statement (MikroORM's query logger). */
  logQueries?: boolean;
  /** No "Applied migration" lines (tests, silent log level). */
  quiet?: boolean;
  /** Server-side statement_timeout of every connection. */
  statementTimeoutMs?: number;
  /** Bound on opening a connection and on waiting for a free one. */
  connectTimeoutMs?: number;
  /** Streaming replicas of `databaseUrl` (named replica1, replica2...); reads reach them only through src/db/replicas. */
  replicaUrls?: readonly string[];
  /**
   * `transaction`: `databaseUrl` is a transaction-mode pooler (PgBouncer), which refuses startup
   * parameters such as `statement_timeout`: the timeout becomes the role's default in the database
   * (`ALTER ROLE CURRENT_USER IN DATABASE ... SET`, which any role may do for itself), applied by the
   * server to every connection the pooler opens.
   */
  pooler?: 'none' | 'transaction';
  /** A direct connection for migrations (DATABASE_MIGRATION_URL), when `databaseUrl` is a pooler. */
  migrationUrl?: string;
}

/** Options shared by the app, the CLI config and the tests. */
export function ormOptions(settings: OrmSettings, totals = new StatementTotals()): Options {
  return {
    clientUrl: settings.databaseUrl,
    entities: [User, Payment, StripeEvent, AuditLogEntry],
    // Every decorator states its type, so discovery needs no emitted metadata (tsx emits none).
    discovery: { requireEntitiesArray: true },
    extensions: [Migrator],
    migrations: {
      migrationsList,
      transactional: true,
      allOrNothing: true,
      snapshot: false,
      silent: settings.quiet ?? false,
    },
    pool: { min: 0, max: settings.poolMax ?? 10 },
    replicas: (settings.replicaUrls ?? []).map((clientUrl, i) => ({ name: `replica${i + 1}`, clientUrl })),
    // Entity finds stay on the primary: a replica is chosen per read by src/db/replicas (healthy,
    // and past the writes that read must see), never at random by the ORM.
    preferReadReplicas: false,
    // Fail fast when PostgreSQL is away: bounded connect, pool wait and statement time.
    driverOptions: {
      acquireConnectionTimeout: settings.connectTimeoutMs ?? 2000,
      connection: {
        connectionTimeoutMillis: settings.connectTimeoutMs ?? 2000,
        // 0: none (migrations, seeds). And no JIT compilation of plans: every statement of the API is
        // served by an index in a few ms, and a plan the planner costs high (a count of many matches
        // of an email search) would spend longer compiling than running.
        ...(settings.pooler === 'transaction' ? {} : { statement_timeout: settings.statementTimeoutMs ?? 10_000, options: '-c jit=off' }),
        keepAlive: true,
      },
    },
    debug: settings.logQueries ? ['query', 'query-params'] : false,
    loggerFactory: (options) => new StatsLogger(options, totals),
    // Request code forks explicitly; touching the global EntityManager is a bug we want to see.
    allowGlobalContext: false,
    // Tables without an entity, owned by their own module's SQL (src/db/single-instance.ts,
    // src/modules/identity) or by the triggers that keep them (Migration20261201050000_counters; read by the repositories).
    schemaGenerator: { skipTables: ['instance_leases', 'payment_counters', 'payment_totals', 'user_totals', 'user_identities'] },
    forceUtcTimezone: true,
  };
}

/**
 * Behind a transaction-mode pooler a session `SET` would stay on whichever server connection ran it,
 * and PgBouncer refuses startup parameters: the statement timeout (and `jit = off`, see `ormOptions`)
 * are made the role's defaults in this database instead, which PostgreSQL applies to each new server
 * connection (those the pooler opens after this; the pooler's `server_lifetime` renews older ones).
 */
async function setRoleDefaults(orm: MikroORM, ms: number): Promise<void> {
  const connection = orm.em.getConnection();
  const [current] = await connection.execute<{ role: string; database: string }[]>('select current_user as role, current_database() as database');
  const ident = (name: string) => `"${name.replace(/"/g, '""')}"`;
  const role = `alter role ${ident(current!.role)} in database ${ident(current!.database)}`;
  // In one transaction, so on one server connection: the defaults for every later one, and the values
  // for this one too (opened before the defaults existed; a session setting stays with it).
  await connection.transactional(async (tx) => {
    await connection.execute(`${role} set statement_timeout = ${Math.trunc(ms)}`, [], 'run', tx);
    await connection.execute(`${role} set jit = off`, [], 'run', tx);
    await connection.execute(`select set_config('statement_timeout', '${Math.trunc(ms)}', false), set_config('jit', 'off', false)`, [], 'run', tx);
  });
}

export interface Database {
  orm: MikroORM;
  /** Statements seen by the ORM logger, attributed to a request or not. */
  totals: StatementTotals;
}

/** The advisory lock one instance migrates under: the others wait for it ("migr"). */
export const MIGRATION_LOCK_KEY = 0x6d696772;

export interface MigrationSettings {
  /** lock_timeout of each migration statement: a lock held longer by others fails the migration. */
  lockTimeoutMs: number;
  /** How long to wait for another instance's migrations to finish. */
  waitMs: number;
  /** Told when this instance waits for another's migrations. */
  log?: (line: string) => void;
}

export const DEFAULT_MIGRATION_SETTINGS: MigrationSettings = { lockTimeoutMs: 10_000, waitMs: 300_000 };

export class MigrationLockTimeoutError extends Error {
  override name = 'MigrationLockTimeoutError';
}

/**
 * Applies pending migrations, one instance at a time, and answers the names it applied. The advisory
 * lock is taken first (instances started together wait for the first to finish, at most `waitMs`) and
 * held while the migrations run, one after the other, each in a transaction of its own, or outside any
 * (a `PaygraphMigration` with `transactional = false`: concurrent index builds, batched backfills); each
 * with no statement timeout and `lockTimeoutMs` on every lock it waits for (src/db/migration.ts). A
 * migration that fails changes nothing of its own and stops the run; those before it stay applied.
 *
 * The lock, on a direct connection: a session lock on a connection of its own, which holds no
 * transaction open, and waiters poll for it with `pg_try_advisory_lock` rather than block in a
 * statement: `create index concurrently` waits for every snapshot older than it, and a waiter blocked
 * in `pg_advisory_lock` holds one, so it would hold up the build it waits for (until a lock timeout).
 * Behind a transaction-mode pooler (`settings.pooler`, when no direct `migrationUrl` is given) a session
 * lock is not safe, so a transaction holds it, and a pending migration that must run outside a
 * transaction is refused, naming DATABASE_MIGRATION_URL.
 */
export async function migrate(settings: OrmSettings, migration: MigrationSettings = DEFAULT_MIGRATION_SETTINGS, overrides: Partial<Options> = {}): Promise<string[]> {
  const direct = settings.migrationUrl !== undefined || settings.pooler !== 'transaction';
  const url = settings.migrationUrl ?? settings.databaseUrl;
  const options = ormOptions({ ...settings, databaseUrl: url, pooler: direct ? 'none' : 'transaction', poolMax: 2, statementTimeoutMs: 0 });
  const session: MigrationSession = { lockTimeoutMs: migration.lockTimeoutMs };
  // A direct connection starts with the run's settings (the statements of a migration outside a
  // transaction commit one by one, on either of the pool's connections); the role's own default
  // statement_timeout, if any, does not apply to migrations.
  const connection = { ...options.driverOptions?.connection, ...(direct ? { options: `-c statement_timeout=0 -c lock_timeout=${Math.trunc(migration.lockTimeoutMs)}` } : {}) };
  const orm = await MikroORM.init({
    ...options,
    ...overrides,
    driverOptions: { ...options.driverOptions, connection },
    migrations: { ...options.migrations, ...overrides.migrations, transactional: true, allOrNothing: false, session } as Options['migrations'],
  });
  const run = async () => (await orm.getMigrator().up()).map((m) => m.name);
  try {
    if (direct) return await withSessionLock(url, migration, run);
    const connection = orm.em.getConnection();
    return await connection.transactional(async (lock) => {
      const query = (sql: string) => connection.execute<{ locked: boolean }[]>(sql, [], 'all', lock);
      await query('set local statement_timeout = 0');
      await pollLock(async () => (await query(`select pg_try_advisory_xact_lock(${MIGRATION_LOCK_KEY}) as locked`))[0]?.locked === true, migration);
      const outside = await pendingOutsideTransactions(orm);
      if (outside.length > 0) {
        throw new Error(`migration ${outside.join(', ')} must run outside a transaction, which a transaction-mode pooler cannot do: set DATABASE_MIGRATION_URL to a direct connection`);
      }
      return run();
    });
  } finally {
    await orm.close(true);
  }
}

/** How often a waiting instance asks for the migration lock again. */
const LOCK_POLL_MS = 200;

/** Takes the migration lock with `tryLock`, asking again every LOCK_POLL_MS for at most `waitMs`. */
async function pollLock(tryLock: () => Promise<boolean>, migration: MigrationSettings): Promise<void> {
  const deadline = Date.now() + migration.waitMs;
  if (await tryLock()) return;
  migration.log?.(`another instance is applying migrations; waiting for it (at most ${migration.waitMs} ms)`);
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, Math.min(LOCK_POLL_MS, Math.max(0, deadline - Date.now()))));
    if (await tryLock()) return;
    if (Date.now() >= deadline) throw new MigrationLockTimeoutError(`another instance's migrations did not finish within ${migration.waitMs} ms (DB_MIGRATION_WAIT_MS)`);
  }
}

/** Runs `work` holding the migration lock as a session lock on a connection of its own (no transaction). */
async function withSessionLock<T>(url: string, migration: MigrationSettings, work: () => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  await client.connect();
  // A failure of this idle connection while the run goes on shows up as the unlock's error below.
  client.on('error', () => undefined);
  try {
    await pollLock(async () => (await client.query<{ locked: boolean }>(`select pg_try_advisory_lock(${MIGRATION_LOCK_KEY}) as locked`)).rows[0]?.locked === true, migration);
    try {
      return await work();
    } finally {
      await client.query(`select pg_advisory_unlock(${MIGRATION_LOCK_KEY})`).catch(() => undefined);
    }
  } finally {
    // Closing the connection also lets the lock go, whatever happened above.
    await client.end().catch(() => undefined);
  }
}

/** The pending migrations that run outside a transaction. */
async function pendingOutsideTransactions(orm: MikroORM): Promise<string[]> {
  const pending = new Set((await orm.getMigrator().getPendingMigrations()).map((m) => m.name));
  const list = (orm.config.get('migrations').migrationsList ?? []) as MigrationObject[];
  return list
    .filter((m) => pending.has(m.name))
    .filter((m) => {
      const Class = m.class as unknown as new (driver: unknown, config: unknown) => { isTransactional(): boolean };
      return !new Class(orm.em.getDriver(), orm.config).isTransactional();
    })
    .map((m) => m.name);
}

/** Applies pending migrations (see `migrate`), then connects with the given settings. */
export async function initORM(
  settings: OrmSettings,
  overrides: Partial<Options> = {},
  migration: MigrationSettings = DEFAULT_MIGRATION_SETTINGS,
): Promise<Database> {
  await migrate(settings, migration, overrides);
  const totals = new StatementTotals();
  const orm = await MikroORM.init({ ...ormOptions(settings, totals), ...overrides });
  if (settings.pooler === 'transaction') await setRoleDefaults(orm, settings.statementTimeoutMs ?? 10_000);
  return { orm, totals };
}
