import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { loadTokens, prepareDatabase, processFaults, startProductionServer, type LoadTokens } from '../helpers/faults.js';
import { projectRoot, type ServerProcess } from '../helpers/server-process.js';

const redisUrl = inject('redisUrl');
const preload = ['--import', path.join(projectRoot, 'tests/helpers/fault-preload.mjs')];

/**
 * What the process does with a fault that no handler took (docs/failure-modes.md; the policy is in
 * src/core/process-faults.ts): a rejection is logged and counted and serving goes on; an uncaught
 * exception drains the requests in flight and exits 1 for the supervisor. Node's default ends the
 * process at once for both.
 */
describe.skipIf(!redisUrl)('the process fault policy', () => {
  let db: TestDatabase;
  let tokens: LoadTokens;
  let server: ServerProcess;

  beforeAll(async () => {
    db = await createTestDatabase();
    await prepareDatabase(db.url, { users: 5, paymentsPerUser: 2 });
    tokens = await loadTokens(2);
    server = await startProductionServer({ DATABASE_URL: db.url, REDIS_URL: redisUrl, CACHE_NAMESPACE: db.name }, { nodeArgs: preload });
  });
  afterAll(async () => {
    await server?.stop();
    await db?.drop();
  });

  const ask = (headers: Record<string, string> = {}) =>
    fetch(server.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${tokens.admin}`, ...headers },
      body: JSON.stringify({ query: '{ users(first: 2) { nodes { id } } }' }),
    });

  it('an unhandled rejection is logged and counted, and the process goes on serving', async () => {
    expect(await processFaults(server)).toBe(0);
    const faulted = await ask({ 'x-test-fault': 'reject' });
    expect(faulted.status).toBe(200);
    await expect.poll(() => processFaults(server)).toBe(1);
    expect(server.output()).toMatch(/"msg":"unhandled promise rejection \(the process keeps serving\)"/);
    expect(server.output()).toContain('a rejection no handler takes (test fault)');
    // Serving goes on, for this request's neighbours and the next ones.
    const after = await Promise.all([ask(), ask(), ask()]);
    expect(after.map((r) => r.status)).toEqual([200, 200, 200]);
    expect(server.child.exitCode).toBeNull();
  });

  it('an uncaught exception drains the request in flight, then exits 1', async () => {
    // The request in flight waits on a lock for a second, so the drain has something to wait for.
    const locker = new pg.Client({ connectionString: db.url });
    await locker.connect();
    await locker.query('begin');
    await locker.query('lock table users in access exclusive mode');
    const started = Date.now();
    const inFlight = fetch(server.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${tokens.admin}`, 'x-test-fault': 'throw' },
      body: JSON.stringify({ query: '{ users(first: 4) { nodes { id email } } }' }),
    });
    let exitedAt = 0;
    const exited = server.exited.then((code) => ((exitedAt = Date.now()), code));
    await new Promise((r) => setTimeout(r, 1000 - (Date.now() - started)));
    // The exception came long before this; the process is still draining (it waits for the request).
    expect(server.child.exitCode).toBeNull();
    await locker.query('commit');
    await locker.end();
    const answered = await inFlight;
    const answeredAt = Date.now();
    expect(answered.status).toBe(200);
    expect(((await answered.json()) as { data: { users: { nodes: unknown[] } } }).data.users.nodes).toHaveLength(4);
    expect(await exited).toBe(1);
    expect(exitedAt).toBeGreaterThanOrEqual(answeredAt - 50);
    expect(server.output()).toMatch(/uncaught exception: draining, then exiting 1/);
    expect(server.output()).toContain('an exception nothing catches (test fault)');
  });
});
