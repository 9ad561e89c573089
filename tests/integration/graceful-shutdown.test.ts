import { afterAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { startServer, type ServerProcess } from '../helpers/server-process.js';
import { TEST_JWT_SECRET } from '../helpers/test-app.js';
import { secretKey, signToken } from '../../src/modules/auth/auth.js';
import { Role } from '../../src/modules/user/user.entity.js';

/**
 * SIGTERM under load: a real server process (the `npm start` command) gets a steady stream of
 * concurrent requests, then SIGTERM. Every request sent before the signal must complete with 200, and
 * the process must exit 0 on its own.
 */
let db: TestDatabase | undefined;
let server: ServerProcess | undefined;

afterAll(async () => {
  await server?.stop('SIGKILL');
  await db?.drop();
});

describe('graceful shutdown', () => {
  it('finishes every request sent before SIGTERM with 200, then exits 0', { timeout: 120_000 }, async () => {
    db = await createTestDatabase();
    server = await startServer({
      ...process.env,
      NODE_ENV: 'production',
      SINGLE_INSTANCE: 'true',
      METRICS_PUBLIC: 'true',
      DATABASE_URL: db.url,
      JWT_SECRET: TEST_JWT_SECRET,
      HOST: '127.0.0.1',
      PORT: '0',
      LOG_LEVEL: 'warn',
      SHUTDOWN_GRACE_MS: '300',
      CACHE_ENABLED: 'false',
      SEED_DEMO: 'true',
    });
    const { url } = server;
    const token = await signToken(secretKey(TEST_JWT_SECRET), { id: 1, role: Role.ADMIN }, 600);
    const body = JSON.stringify({ query: '{ users(first: 20) { nodes { email payments(first: 5) { nodes { amount } } } } }' });

    const results: { sentAt: number; status: number | string }[] = [];
    let signalAt = Infinity;
    let stop = false;
    const worker = async () => {
      while (!stop) {
        const sentAt = performance.now();
        try {
          const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body });
          await res.text();
          results.push({ sentAt, status: res.status });
        } catch (err) {
          results.push({ sentAt, status: (err as Error).cause ? String((err as { cause: { code?: string } }).cause.code) : 'error' });
          if (sentAt > signalAt) return;
        }
      }
    };
    const workers = Array.from({ length: 8 }, worker);
    await new Promise((r) => setTimeout(r, 1500));
    signalAt = performance.now();
    const code = await server.stop('SIGTERM');
    stop = true;
    await Promise.all(workers);

    const before = results.filter((r) => r.sentAt < signalAt);
    expect(before.length).toBeGreaterThan(50);
    expect(before.filter((r) => r.status !== 200)).toEqual([]);
    expect(code, server.output()).toBe(0);
  });
});
