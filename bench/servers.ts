/** What the bench's runs share: the servers they start, the tokens they sign, what they read back. */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import autocannon from 'autocannon';
import { freePort } from '../src/db/embedded.js';

export const root = path.resolve(import.meta.dirname, '..');
export const JWT_SECRET = randomBytes(32).toString('base64url');
export const METRICS_TOKEN = randomBytes(16).toString('hex');
export const log = (line: string) => process.stdout.write(`[bench] ${line}\n`);

/** The Node the servers run on: production's (runtime/node.sh), unless BENCH_NODE names another. */
export const SERVER_NODE = process.env.BENCH_NODE || path.join(execFileSync('bash', [path.join(root, 'runtime/node.sh')], { encoding: 'utf8' }).trim(), 'node');
export const nodeVersion = (node: string) => execFileSync(node, ['--version'], { encoding: 'utf8' }).trim();

/** The settings every benched app runs with (production mode, one instance, no demo data), on `databaseUrl`. */
export function appEnv(databaseUrl: string): NodeJS.ProcessEnv {
  return {
    NODE_ENV: 'production',
    DATABASE_URL: databaseUrl,
    SINGLE_INSTANCE: 'true',
    JWT_SECRET,
    METRICS_TOKEN,
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    SEED_DEMO: 'false',
    SHUTDOWN_GRACE_MS: '0',
    // Cost budgets stay on (production's default), sized so that no bench load is ever refused: what
    // the bench measures is what the accounting costs each request, not refusals.
    RATE_LIMIT_CAPACITY: '1000000000',
    RATE_LIMIT_RESTORE_RATE: '1000000000',
    RATE_LIMIT_ADMIN_CAPACITY: '1000000000',
    RATE_LIMIT_ADMIN_RESTORE_RATE: '1000000000',
    PAYMENT_ATTEMPTS_PER_MINUTE: '0',
    PAYMENT_ATTEMPTS_MAX_FAILURES: '0',
  };
}

/**
 * Load on `<url>/graphql`: POSTs from `connections` connections for `duration` seconds (or `amount`
 * requests), the n-th request's headers and body made by `request(n)`; `progress` draws a bar on a
 * terminal. `stop` ends it early.
 */
export function postLoad(
  url: string,
  options: { connections: number; duration?: number; amount?: number; progress?: boolean },
  request: (n: number) => { headers: Record<string, string>; body: string },
): { done: Promise<autocannon.Result>; stop: () => void } {
  let i = 0;
  let instance: autocannon.Instance | undefined;
  const done = new Promise<autocannon.Result>((resolve, reject) => {
    instance = autocannon(
      {
        url: `${url}/graphql`,
        connections: options.connections,
        ...(options.amount ? { amount: options.amount } : { duration: options.duration }),
        requests: [{ method: 'POST', setupRequest: (req) => ({ ...req, ...request(i++) }) }],
      },
      (err, result) => (err ? reject(err) : resolve(result)),
    );
    if (options.progress) autocannon.track(instance, { renderProgressBar: process.stdout.isTTY, renderResultsTable: false, renderLatencyTable: false });
  });
  return { done, stop: () => instance?.stop() };
}

export interface Running {
  url: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

export async function startProcess(label: string, args: string[], env: NodeJS.ProcessEnv, ready: RegExp, node = SERVER_NODE, cwd = root): Promise<Running> {
  const port = await freePort();
  const child = spawn(node, args, { cwd, env: { ...process.env, ...env, PORT: String(port) }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (c) => (output += c));
  child.stderr!.on('data', (c) => (output += c));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${label} did not start:\n${output}`)), 60_000);
    const check = () => {
      if (ready.test(output)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on('data', check);
    child.on('exit', (code) => reject(new Error(`${label} exited (${code}):\n${output}`)));
  });
  return {
    url: `http://127.0.0.1:${port}`,
    child,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

export /** Node flags of the production start command (`npm run start:prod`), so the bench runs what ships. */
function productionNodeArgs(): string[] {
  const script: string = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')).scripts['start:prod'];
  const words = script.split(/\s+/);
  return words.slice(words.indexOf('node') + 1);
}

export /** Statements per request of one operation, from the server's own Prometheus histogram. */
async function statementStats(url: string, operation: string): Promise<{ sum: number; count: number }> {
  const text = await (await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).text();
  const pick = (suffix: string) => Number(new RegExp(`^graphql_operation_sql_statements_${suffix}\\{operation="${operation}"\\} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
  return { sum: pick('sum'), count: pick('count') };
}

