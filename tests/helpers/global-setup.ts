import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { startEmbeddedPostgres } from '../../src/db/embedded.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** A PostgreSQL server URL (no database): each test file creates and drops its own database. */
    pgServerUrl: string;
  }
}

/**
 * TEST_DATABASE_URL names a server to use; without it, a throw-away embedded PostgreSQL is started
 * for the run, so `npm test` works on a machine with nothing installed.
 */
export default async function setup(project: TestProject) {
  const configured = process.env.TEST_DATABASE_URL;
  if (configured) {
    project.provide('pgServerUrl', configured);
    return;
  }
  const dataDir = await mkdtemp(path.join(tmpdir(), 'paygraph-test-'));
  const db = await startEmbeddedPostgres({ dataDir, ephemeral: true });
  project.provide('pgServerUrl', db.serverUrl);
  return async () => {
    await db.stop();
    await rm(dataDir, { recursive: true, force: true });
  };
}
