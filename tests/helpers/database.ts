import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';

/** `postgresql://host/db` -> the same server with another database name. */
export function withDatabaseName(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

async function connected<T>(database: string, run: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: withDatabaseName(inject('pgServerUrl'), database) });
  await client.connect();
  try {
    return await run(client);
  } finally {
    await client.end();
  }
}

export interface TestDatabase {
  name: string;
  url: string;
  /** Runs one statement in this database on a connection of its own (behind any app's back). */
  query<T = Record<string, unknown>>(text: string, params?: unknown[]): Promise<T[]>;
  drop(): Promise<void>;
}

/** A new, empty database on the test server, private to the caller. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `paygraph_test_${randomBytes(6).toString('hex')}`;
  await connected('postgres', (c) => c.query(`create database ${name}`));
  return {
    name,
    url: withDatabaseName(inject('pgServerUrl'), name),
    query: (text, params = []) => connected(name, async (c) => (await c.query(text, params)).rows),
    drop: () => connected('postgres', (c) => c.query(`drop database if exists ${name} with (force)`)).then(() => undefined),
  };
}
