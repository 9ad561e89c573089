import { MikroORM, type Options } from '@mikro-orm/postgresql';
import { Migrator } from '@mikro-orm/migrations';
import { User } from '../modules/user/user.entity.js';
import { Payment } from '../modules/payment/payment.entity.js';
import { StripeEvent } from '../modules/payment/stripe-event.entity.js';
import { AuditLogEntry } from '../modules/audit/audit.entity.js';
import { StatementTotals, StatsLogger } from '../core/sql-stats.js';
import { migrationsList } from './migrations/index.js';

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
        // 0: none (migrations, seeds).
        ...(settings.pooler === 'transaction' ? {} : { statement_timeout: settings.statementTimeoutMs ?? 10_000 }),
        keepAlive: true,
      },
    },
    debug: settings.logQueries ? ['query', 'query-params'] : false,
    loggerFactory: (options) => new StatsLogger(options, totals),
    // Request code forks explicitly; touching the global EntityManager is a bug we want to see.
    allowGlobalContext: false,
    // Tables without an entity, owned by their own module's SQL (src/db/single-instance.ts).
    schemaGenerator: { skipTables: ['instance_leases'] },
    forceUtcTimezone: true,
  };
}

/**
 * Behind a transaction-mode pooler a session `SET` would stay on whichever server connection ran it,
 * and PgBouncer refuses a `statement_timeout` startup parameter: the bound is made the role's default
 * in this database instead, which PostgreSQL applies to each new server connection (those the pooler
 * opens after this; the pooler's `server_lifetime` renews older ones).
 */
async function setRoleStatementTimeout(orm: MikroORM, ms: number): Promise<void> {
  const connection = orm.em.getConnection();
  const [current] = await connection.execute<{ role: string; database: string }[]>('select current_user as role, current_database() as database');
  const ident = (name: string) => `"${name.replace(/"/g, '""')}"`;
  // In one transaction, so on one server connection: the default for every later one, and the value
  // for this one too (opened before the default existed; a session setting stays with it).
  await connection.transactional(async (tx) => {
    await connection.execute(`alter role ${ident(current!.role)} in database ${ident(current!.database)} set statement_timeout = ${Math.trunc(ms)}`, [], 'run', tx);
    await connection.execute(`select set_config('statement_timeout', '${Math.trunc(ms)}', false)`, [], 'run', tx);
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
 * Applies pending migrations, one instance at a time, and answers the names it applied. In one
 * transaction: take the advisory lock (instances started together wait here for the first to finish,
 * at most `waitMs`), then every pending migration, all or nothing. No statement timeout (a migration
 * takes what it takes: an index on a large table is minutes) but `lockTimeoutMs` on every lock a
 * migration waits for, so a migration stuck behind traffic fails instead of making all traffic queue
 * behind its own lock. On a connection pool of its own (two connections: the migrator reads its table
 * beside the transaction), closed afterwards. Transaction-scoped lock and settings (`set local`), so it
 * works behind a transaction-mode pooler.
 */
export async function migrate(settings: OrmSettings, migration: MigrationSettings = DEFAULT_MIGRATION_SETTINGS, overrides: Partial<Options> = {}): Promise<string[]> {
  const orm = await MikroORM.init({ ...ormOptions({ ...settings, poolMax: 2, statementTimeoutMs: 0 }), ...overrides });
  try {
    const connection = orm.em.getConnection();
    return await connection.transactional(async (trx) => {
      const set = (sql: string) => connection.execute(sql, [], 'run', trx);
      await set('set local statement_timeout = 0');
      await set(`set local lock_timeout = ${Math.trunc(migration.waitMs)}`);
      const [first] = await connection.execute<{ locked: boolean }[]>('select pg_try_advisory_xact_lock(?) as locked', [MIGRATION_LOCK_KEY], 'all', trx);
      if (!first?.locked) {
        migration.log?.(`another instance is applying migrations; waiting for it (at most ${migration.waitMs} ms)`);
        try {
          await connection.execute('select pg_advisory_xact_lock(?)', [MIGRATION_LOCK_KEY], 'all', trx);
        } catch (err) {
          if ((err as { code?: unknown }).code === '55P03') {
            throw new MigrationLockTimeoutError(`another instance's migrations did not finish within ${migration.waitMs} ms (DB_MIGRATION_WAIT_MS)`);
          }
          throw err;
        }
      }
      await set(`set local lock_timeout = ${Math.trunc(migration.lockTimeoutMs)}`);
      const applied = await orm.getMigrator().up({ transaction: trx });
      return applied.map((m) => m.name);
    });
  } finally {
    await orm.close(true);
  }
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
  if (settings.pooler === 'transaction') await setRoleStatementTimeout(orm, settings.statementTimeoutMs ?? 10_000);
  return { orm, totals };
}
