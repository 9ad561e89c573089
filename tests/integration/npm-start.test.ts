import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { postGraphql, projectRoot as root, startServer, type ServerProcess } from '../helpers/server-process.js';

/**
 * Tried as a new user would: `npm start` with nothing configured starts an embedded PostgreSQL,
 * migrates, seeds, prints the URL and tokens; the printed token works over real HTTP; `npm run
 * token` reaches the same embedded server; SIGTERM stops everything with exit code 0.
 */
let dataDir: string;
let server: ServerProcess | undefined;

function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra };
  for (const name of ['DATABASE_URL', 'JWT_SECRET', 'TEST_DATABASE_URL', 'VITEST', 'VITEST_POOL_ID', 'VITEST_WORKER_ID']) delete env[name];
  env.NODE_ENV = 'development';
  return env;
}

function run(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: root, env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The local addresses (hex, as /proc/net/tcp writes them) of sockets listening on this port. */
async function listeningAddresses(port: number): Promise<string[]> {
  const table = await readFile('/proc/net/tcp', 'utf8');
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  return table
    .split('\n')
    .slice(1)
    .map((line) => line.trim().split(/\s+/))
    .filter((cols) => cols[1]?.endsWith(`:${hexPort}`) && cols[3] === '0A')
    .map((cols) => cols[1]!.split(':')[0]!);
}

const leftoverPostgres = async (env: NodeJS.ProcessEnv) => (await run('pgrep', ['-f', path.join(dataDir, 'postgres')], env)).stdout.trim();

afterAll(async () => {
  await server?.stop('SIGKILL');
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

describe('npm start on a machine with nothing configured', () => {
  it('serves the API on embedded PostgreSQL, prints working tokens, and stops cleanly on SIGTERM', { timeout: 180_000 }, async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'paygraph-start-'));
    // No HOST: development listens on loopback only (it prints an admin token and returns SQL texts).
    const env = cleanEnv({ DATA_DIR: dataDir, PORT: '0' });
    server = await startServer(env, { timeoutMs: 150_000, until: (output) => output.includes('npm run token') });
    expect(await listeningAddresses(Number(new URL(server.url).port))).toEqual(['0100007F']);
    const adminToken = /admin admin@paygraph\.dev -> Authorization: Bearer (\S+)/.exec(server.output())?.[1];
    expect(adminToken, server.output()).toBeDefined();
    const url = server.url;

    const { status, body } = await postGraphql(url, '{ me { email role } users(first: 2) { totalCount nodes { payments(first: 1) { totalCount } } } }', adminToken);
    expect(status).toBe(200);
    expect(body.data.me).toEqual({ email: 'admin@paygraph.dev', role: 'ADMIN' });
    expect(body.data.users.totalCount).toBe(50);
    expect(body.data.users.nodes[0].payments.totalCount).toBe(20);
    // Development responses carry the statement count, for Apollo Sandbox users: me, the users page,
    // its totalCount, the payments batch and the nested totalCount batch.
    expect(body.extensions.sql.statements).toBe(5);

    const sandbox = await fetch(url, { headers: { accept: 'text/html' } });
    expect(sandbox.status).toBe(200);
    expect(await sandbox.text()).toMatch(/sandbox/i);

    const token = await run('npm', ['run', '--silent', 'token', '--', 'user2@paygraph.dev'], env);
    expect(token.code, token.stderr).toBe(0);
    const { body: meBody } = await postGraphql(url, '{ me { email } paymentHistory(first: 3) { nodes { amount } } }', token.stdout.trim());
    expect(meBody.data.me.email).toBe('user2@paygraph.dev');
    expect(meBody.data.paymentHistory.nodes).toHaveLength(3);

    // A second `npm start` on the same data directory says in one line who holds it, and exits 1.
    const second = await run(process.execPath, ['--import', 'tsx', 'src/main.ts'], env);
    expect(second.code).toBe(1);
    const lines = (second.stdout + second.stderr).trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^\\[paygraph\\] cannot start: another server holds \\S+postgres \\(PostgreSQL PID \\d+ for paygraph process ${server.child.pid}\\): stop that`));

    expect(await server.stop('SIGTERM')).toBe(0);
    expect(server.output()).toMatch(/SIGTERM: draining/);
    // The embedded server is gone with it: its info file is removed on stop.
    expect(existsSync(path.join(dataDir, 'embedded-postgres.json'))).toBe(false);
    expect(await leftoverPostgres(env)).toBe('');
  });

  it('stops the server and its embedded PostgreSQL when a process manager sends SIGTERM to npm itself', { timeout: 180_000 }, async () => {
    const env = cleanEnv({ DATA_DIR: dataDir, PORT: '0' });
    const npm = spawn('npm', ['start'], { cwd: root, env });
    let output = '';
    npm.stdout.on('data', (c) => (output += c));
    npm.stderr.on('data', (c) => (output += c));
    const exited = new Promise<number | null>((resolve) => npm.on('exit', (code) => resolve(code)));
    for (let i = 0; i < 1200 && !/ready at http:\/\/localhost:(\d+)/.test(output); i++) await new Promise((r) => setTimeout(r, 100));
    const port = Number(/ready at http:\/\/localhost:(\d+)/.exec(output)?.[1]);
    expect(port, output).toBeGreaterThan(0);
    expect(await leftoverPostgres(env)).not.toBe('');

    npm.kill('SIGTERM');
    await exited;
    // The server drained and stopped its PostgreSQL: nothing listens, nothing is left.
    for (let i = 0; i < 100 && ((await listeningAddresses(port)).length > 0 || (await leftoverPostgres(env)) !== ''); i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(output).toMatch(/SIGTERM: draining/);
    expect(await listeningAddresses(port)).toEqual([]);
    expect(await leftoverPostgres(env)).toBe('');
  });
});
