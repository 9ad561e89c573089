import { MikroORM } from '@mikro-orm/postgresql';
import { loadConfigOrExit, type Config } from '../config.js';
import { resolveDatabase } from '../db/database.js';
import { initORM } from '../db/orm.js';

/**
 * Runs a maintenance command against the configured database: DATABASE_URL, the embedded server of
 * a running `npm start`, or an embedded server started (and stopped) for this command.
 */
export async function withDatabase(run: (orm: MikroORM, config: Config) => Promise<void>): Promise<void> {
  const config = loadConfigOrExit();
  const db = await resolveDatabase(config, { reuseRunning: true });
  try {
    const { orm } = await initORM({ databaseUrl: db.url, poolMax: 2 });
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
