import { readFile } from 'node:fs/promises';
import type { Config } from '../config.js';
import { embeddedInfoFile, isAlive, startEmbeddedPostgres } from './embedded.js';

export interface ResolvedDatabase {
  url: string;
  /** True when this process started an embedded server (and `release` stops it). */
  embedded: boolean;
  release(): Promise<void>;
}

/**
 * DATABASE_URL when set. Otherwise the embedded PostgreSQL under DATA_DIR: the one a running
 * `npm start` owns (scripts such as `npm run token` share it), else one started for this process.
 */
export async function resolveDatabase(
  config: Config,
  options: { reuseRunning: boolean; log?: (line: string) => void },
): Promise<ResolvedDatabase> {
  if (config.databaseUrl) return { url: config.databaseUrl, embedded: false, release: async () => {} };
  if (options.reuseRunning) {
    try {
      const info = JSON.parse(await readFile(embeddedInfoFile(config.dataDir), 'utf8')) as { url: string; pid: number };
      if (isAlive(info.pid)) return { url: info.url, embedded: false, release: async () => {} };
    } catch {
      // no running server recorded: start one below
    }
  }
  const db = await startEmbeddedPostgres({ dataDir: config.dataDir, log: options.log });
  return { url: db.url, embedded: true, release: () => db.stop() };
}
