import type { MikroORM } from '@mikro-orm/postgresql';
import type { Config } from '../config.js';
import { initORM } from '../db/orm.js';
import { SingleInstanceLease } from '../db/single-instance.js';
import type { StatementTotals } from '../core/sql-stats.js';

/** The database as the app holds it: the ORM (migrations applied), its statement totals, the lease. */
export interface Database {
  orm: MikroORM;
  totals: StatementTotals;
  /** SINGLE_INSTANCE=true: the lease that keeps a second instance out; null otherwise. */
  lease: SingleInstanceLease | null;
}

/**
 * Step 1: connects (primary, replicas, pooler settings), applies migrations under their lock, and with
 * SINGLE_INSTANCE takes the lease. `fatal` is called if the lease is later taken over.
 */
export async function openDatabase(config: Config, fatal: (reason: string) => void): Promise<Database> {
  const { orm, totals } = await initORM(
    {
      databaseUrl: config.databaseUrl!,
      poolMax: config.dbPoolMax,
      quiet: config.logLevel === 'silent',
      statementTimeoutMs: config.db.statementTimeoutMs,
      connectTimeoutMs: config.db.connectTimeoutMs,
      replicaUrls: config.replicas.urls,
      pooler: config.pooler,
      migrationUrl: config.db.migrationUrl,
    },
    {},
    {
      lockTimeoutMs: config.db.migrationLockTimeoutMs,
      waitMs: config.db.migrationWaitMs,
      log: (line) => config.logLevel !== 'silent' && console.error(`[paygraph] ${line}`),
    },
  );
  try {
    // SINGLE_INSTANCE=true is a promise that no other instance runs here: held as a lease, so a second one is refused.
    const lease = config.singleInstance ? await SingleInstanceLease.acquire(orm, fatal) : null;
    return { orm, totals, lease };
  } catch (err) {
    await orm.close(true);
    throw err;
  }
}
