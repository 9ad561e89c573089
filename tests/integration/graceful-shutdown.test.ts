import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { TEST_JWT_SECRET } from '../helpers/test-app.js';
import { secretKey, signToken } from '../../src/modules/auth/auth.js';
import { Role } from '../../src/modules/user/user.entity.js';

/**
 * SIGTERM under load: a real server process (the `npm start` command) gets a steady stream of
 * concurrent requests, then SIGTERM. Every request sent before the signal must complete with 200, and
 * the process must exit 0 on its own.
 */
const root = path.resolve(import.meta.dirname, '../..');
let db: TestDatabase | undefined;
let server: ChildProcess | undefined;

afterAll(async () => {
  if (server && server.exitCode === null) server.kill('SIGKILL');
  await db?.drop();
});

describe('graceful shutdown', () => {
  it('finishes every request sent before SIGTERM with 200, then exits 0', { timeout: 120_000 }, async () => {
    db = await createTestDatabase();
    const start: string = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')).scripts.start;
    const [, ...args] = start.split(' ');
    server = spawn(process.execPath, args, {
      cwd: root,
      env: {
        ...process.env,
        NODE_ENV: 'production',
        DATABASE_URL: db.url,
        JWT_SECRET: TEST_JWT_SECRET,
        HOST: '127.0.0.1',
        PORT: '0',
        LOG_LEVEL: 'warn',
        SHUTDOWN_GRACE_MS: '300',
        CACHE_ENABLED: 'false',
        SEED_DEMO: 'true',
      },
    });
    let output = '';
    server.stderr!.on('data', (c) => (output += c));
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`not ready:\n${output}`)), 90_000);
      server!.stdout!.on('data', (chunk) => {
        output += chunk;
        const match = /ready at (http:\/\/localhost:\d+\/graphql)/.exec(output);
        if (match) {
          clearTimeout(timer);
          resolve(match[1]!.replace('localhost', '127.0.0.1'));
        }
      });
      server!.on('exit', (code) => reject(new Error(`exited early with ${code}:\n${output}`)));
    });
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
    const exited = new Promise<number | null>((resolve) => server!.on('exit', (code) => resolve(code)));
    const workers = Array.from({ length: 8 }, worker);
    await new Promise((r) => setTimeout(r, 1500));
    signalAt = performance.now();
    server.kill('SIGTERM');
    const code = await exited;
    stop = true;
    await Promise.all(workers);

    const before = results.filter((r) => r.sentAt < signalAt);
    expect(before.length).toBeGreaterThan(50);
    expect(before.filter((r) => r.status !== 200)).toEqual([]);
    expect(code, output).toBe(0);
  });
});
