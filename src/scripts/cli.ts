import { MikroORM } from '@mikro-orm/postgresql';
import { loadConfigOrExit, type Config, type EntryPoint } from '../config.js';
import { resolveDatabase } from '../db/database.js';
import { initORM } from '../db/orm.js';

export interface ScriptOptions {
  /** The script, for the configuration it is checked against (each needs only what it uses). */
  entry: Exclude<EntryPoint, 'server'>;
  /**
   * The statement timeout of the script's connections: the configured DB_STATEMENT_TIMEOUT_MS unless
   * the script says otherwise (0: none, for work that is long by nature, such as a large seed).
   */
  statementTimeoutMs?: (config: Config) => number;
}

/**
 * Runs a maintenance command against the configured database: DATABASE_URL, the embedded server of
 * a running `npm start`, or an embedded server started (and stopped) for this command. Pending
 * migrations are applied first, under the same lock and settings as at a server's start.
 */
export async function withDatabase(options: ScriptOptions, run: (orm: MikroORM, config: Config) => Promise<void>): Promise<void> {
  const config = loadConfigOrExit(options.entry);
  const db = await resolveDatabase(config, { reuseRunning: true });
  try {
    const { orm } = await initORM(
      {
        databaseUrl: db.url,
        poolMax: 2,
        statementTimeoutMs: options.statementTimeoutMs?.(config) ?? config.db.statementTimeoutMs,
        connectTimeoutMs: config.db.connectTimeoutMs,
        pooler: config.pooler,
        migrationUrl: config.db.migrationUrl,
      },
      {},
      { lockTimeoutMs: config.db.migrationLockTimeoutMs, waitMs: config.db.migrationWaitMs, log: (line) => console.error(line) },
    );
    try {
      await run(orm, config);
    } finally {
      await orm.close(true);
    }
  } finally {
    await db.release();
  }
}

/** `--name value` from argv, as a non-negative integer. */
export function intFlag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i === -1) return fallback;
  const value = Number(process.argv[i + 1]);
  if (!Number.isInteger(value) || value < 0) {
    console.error(`--${name} needs a non-negative integer`);
    process.exit(2);
  }
  return value;
}
