import { spawn } from 'node:child_process';
import path from 'node:path';
import { expect } from 'vitest';
import { initORM } from '../../src/db/orm.js';
import { seedDemoData, type SeedOptions } from '../../src/db/seeders/demo.seeder.js';
import { secretKey, signToken } from '../../src/modules/auth/auth.js';
import { Role } from '../../src/modules/user/user.entity.js';
import { projectRoot, startServer, type ServerProcess } from './server-process.js';
import { TEST_JWT_SECRET } from './test-app.js';

export const METRICS_TOKEN = 'fault-tests-metrics-token';

/**
 * The server as production runs it (NODE_ENV=production: every cache at its production default,
 * errors masked, JSON logs at warn), in a process of its own, so that whatever would end a process
 * ends this one. `env` adds the database, Redis and the fault's own settings.
 */
export async function startProductionServer(env: Record<string, string>, options: { nodeArgs?: string[] } = {}): Promise<ServerProcess> {
  return startServer(
    {
      PATH: process.env.PATH,
      NODE_ENV: 'production',
      HOST: '127.0.0.1',
      PORT: '0',
      JWT_SECRET: TEST_JWT_SECRET,
      METRICS_TOKEN,
      LOG_LEVEL: 'warn',
      SHUTDOWN_GRACE_MS: '0',
      DB_CONNECT_TIMEOUT_MS: '1000',
      ...env,
    },
    { nodeArgs: options.nodeArgs, timeoutMs: 60_000 },
  );
}

/** Migrates and seeds a database before a server starts on it (with a pool of its own, closed after). */
export async function prepareDatabase(databaseUrl: string, seed: SeedOptions): Promise<void> {
  const { orm } = await initORM({ databaseUrl, quiet: true });
  try {
    await seedDemoData(orm.em.fork(), seed);
    await orm.em.fork().getConnection().execute('analyze');
  } finally {
    await orm.close(true);
  }
}

export interface LoadTokens {
  admin: string;
  users: { id: number; token: string }[];
}

/** Tokens of the seeded admin (id 1) and of users 2.. (active ones: the seed deactivates every tenth). */
export async function loadTokens(userCount: number): Promise<LoadTokens> {
  const key = secretKey(TEST_JWT_SECRET);
  const ids: number[] = [];
  for (let id = 2; ids.length < userCount; id++) if (id % 10 !== 0) ids.push(id);
  return {
    admin: await signToken(key, { id: 1, role: Role.ADMIN }, 3600),
    users: await Promise.all(ids.map(async (id) => ({ id, token: await signToken(key, { id, role: Role.USER }, 3600) }))),
  };
}

/** What the load process saw (see tests/helpers/load-generator.mjs). */
export interface LoadReport {
  startedAt: number;
  bucketMs: number;
  total: number;
  ok: number;
  unanswered: number;
  byStatus: Record<string, number>;
  byCode: Record<string, number>;
  uncoded: number;
  missingRetryAfter: number;
  stale: number;
  writes: number;
  lastWritten: Record<string, string>;
  buckets: { ok: number; failed: number }[];
  samples: Record<string, unknown>[];
  payments: { key: string; userId: number; id: string; attempts: number }[];
}

export interface LoadOptions {
  url: string;
  /** Where readYourWrites reads back what it wrote (another instance); default `url`. */
  readUrl?: string;
  scenario: 'overlappingUsers' | 'mixedReads' | 'readYourWrites' | 'createPayments';
  durationMs: number;
  concurrency: number;
  tokens: LoadTokens;
  users?: number;
  bucketMs?: number;
}

/** Starts the load process; its report arrives when it is done (it stops by itself after `durationMs`). */
export function startLoad(options: LoadOptions): Promise<LoadReport> {
  const base = (u: string) => u.replace(/\/graphql$/, '');
  const child = spawn(process.execPath, [path.join(projectRoot, 'tests/helpers/load-generator.mjs'), JSON.stringify({ ...options, url: base(options.url), readUrl: base(options.readUrl ?? options.url) })], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (c) => (out += c));
  child.stderr.on('data', (c) => (err += c));
  return new Promise((resolve, reject) => {
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out) as LoadReport) : reject(new Error(`load generator exited ${code}: ${err}`))));
  });
}

/**
 * How long after `faultEndedAt` (epoch ms) the answers were all good again: from then to the start of
 * the first slice after which every slice had only good answers. Null if they never were.
 */
export function recoveryMs(report: LoadReport, faultEndedAt: number): number | null {
  const from = Math.floor((faultEndedAt - report.startedAt) / report.bucketMs);
  let firstGood: number | null = null;
  report.buckets.forEach((b, i) => {
    if (i < from) return;
    if (b.failed > 0) firstGood = null;
    else if (firstGood === null && b.ok > 0) firstGood = i;
  });
  if (firstGood === null) return null;
  return Math.max(0, report.startedAt + firstGood * report.bucketMs - faultEndedAt);
}

/**
 * What every fault test asks of what clients saw: every request answered (no refused or reset
 * connection, no timeout), every failure coded, a 503 always with Retry-After, and only the codes the
 * fault may cause.
 */
export function expectAnsweredAndCoded(report: LoadReport, allowedCodes: readonly string[]): void {
  expect(report.total).toBeGreaterThan(0);
  expect({ unanswered: report.unanswered, uncoded: report.uncoded, missingRetryAfter: report.missingRetryAfter, samples: report.samples.filter((s) => s.kind !== 'error') }).toEqual({
    unanswered: 0,
    uncoded: 0,
    missingRetryAfter: 0,
    samples: [],
  });
  for (const status of Object.keys(report.byStatus)) expect(['200', '503']).toContain(status);
  for (const code of Object.keys(report.byCode)) expect(allowedCodes).toContain(code);
}

/** The server process is still running and answers its liveness probe; it counted no process fault. */
export async function expectAlive(server: ServerProcess): Promise<void> {
  expect(server.child.exitCode).toBeNull();
  expect(server.child.signalCode).toBeNull();
  const base = server.url.replace(/\/graphql$/, '');
  expect((await fetch(`${base}/healthz`)).status).toBe(200);
  expect(await processFaults(server)).toBe(0);
}

/** `process_faults_total` over every kind, from the server's /metrics. */
export async function processFaults(server: ServerProcess): Promise<number> {
  const text = await (await fetch(`${server.url.replace(/\/graphql$/, '')}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).text();
  return [...text.matchAll(/^process_faults_total\{[^}]*\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);
}

/** One line of what a fault case saw, for the run's log (docs/failure-modes.md quotes these). */
export function reportFault(name: string, report: LoadReport, recovery: number | null = null): void {
  const codes = Object.entries(report.byCode).map(([code, n]) => `${code} ${n}`).join(', ') || 'none';
  console.log(
    `[faults] ${name}: ${report.total} requests, ${report.ok} with data, errors ${codes}, unanswered ${report.unanswered}, uncoded ${report.uncoded}, ` +
      `stale ${report.stale} of ${report.writes} writes read back${recovery === null ? '' : `, normal ${recovery} ms after the fault ended`}`,
  );
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
