/**
 * `npm run bench`: the server against a raw-driver baseline, on the same data, in one run.
 *
 * Creates its own database (on DATABASE_URL's server, else an embedded PostgreSQL), seeds 1,000 users
 * x 20 payments, then for each scenario drives the baseline and the real server (a child process,
 * production mode, logs at warn; for Q2 and Q4 also one with the query cache warm, and for Q1, Q2 and Q4
 * one with the response cache warm) with autocannon:
 * 16 connections, BENCH_DURATION seconds (10) each after a warm-up, in BENCH_SLICES (2) interleaved
 * slices. Reports requests/s, p50, p99, errors, SQL statements per request (from the server's own
 * /metrics), peak RSS of the server, and the ratio to the baseline; writes bench/results/latest.json.
 *
 * The servers (app and baseline) run on the Node that production runs: the one runtime/node.sh pins
 * (the Dockerfile's), whatever Node runs this script; BENCH_NODE=<path> runs them on another.
 * BENCH_COMPARE_NODE=<path>[,<path>] adds, interleaved with the others, the app on each of those Nodes
 * (an A/B of runtimes in one run), and BENCH_ASYNC_CONTEXT=1 the app with an AsyncLocalStorage entered
 * for every HTTP request (bench/async-context.mjs) on each of its Nodes: what carrying request state in
 * an async context would cost. BENCH_COMPARE_FLAGS='<flags>[;<flags>]' adds the app on production's
 * Node with those Node flags instead of `start:prod`'s (say `--max-semi-space-size=16`).
 * BENCH_LIMITS_OFF=1 adds the app with cost budgets off (they are on, sized never to refuse, in `app`).
 * BENCH_COMPARE_BUILD=<dir> adds the app built in another checkout (its `dist/`, after its own `npm
 * run build`): a before/after of two versions of the code in one run, on the same database.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import autocannon from 'autocannon';
import pg from 'pg';
import { initORM } from '../src/db/orm.js';
import { startEmbeddedPostgres } from '../src/db/embedded.js';
import { seedDemoData } from '../src/db/seeders/demo.seeder.js';
import { secretKey, signToken } from '../src/modules/auth/auth.js';
import { Role } from '../src/modules/user/user.entity.js';
import { PAYMENTS_PER_USER, SCENARIOS, TOKEN_USERS, USERS, type Scenario } from './scenarios.js';
import { appEnv, JWT_SECRET, log, nodeVersion, postLoad, productionNodeArgs, root, SERVER_NODE, startProcess, statementStats, type Running } from './servers.js';

const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 16);
const DURATION = Number(process.env.BENCH_DURATION ?? 10);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 3);
/** Each target's DURATION is split into this many slices, interleaved with the other targets'. */
const SLICES = Math.max(1, Number(process.env.BENCH_SLICES ?? 2));
/** Run again on an app with the query cache warm (response cache off), and with the response cache warm. */
const WARM_SCENARIOS: readonly string[] = ['Q2', 'Q4'];
const RESPONSE_CACHE_SCENARIOS: readonly string[] = ['Q1', 'Q2', 'Q4'];
const QUERY_CACHE_WARM = 'app (cache warm)';
const RESPONSE_CACHE_WARM = 'app (response cache warm)';
const isWarm = (target: string) => target === QUERY_CACHE_WARM || target === RESPONSE_CACHE_WARM;
const COMPARE_NODES = (process.env.BENCH_COMPARE_NODE ?? '').split(',').filter(Boolean);
const ASYNC_CONTEXT = process.env.BENCH_ASYNC_CONTEXT === '1';
const COMPARE_FLAGS = (process.env.BENCH_COMPARE_FLAGS ?? '').split(';').map((f) => f.trim()).filter(Boolean);
/** BENCH_LIMITS_OFF=1: also the app with RATE_LIMIT_ENABLED=false, interleaved (what the budgets cost). */
const LIMITS_OFF = process.env.BENCH_LIMITS_OFF === '1';
const COMPARE_BUILD = process.env.BENCH_COMPARE_BUILD ? path.resolve(process.env.BENCH_COMPARE_BUILD) : null;

/** BENCH_TRACING=1,0.1: also run the app with OpenTelemetry on at these sampling ratios (to a local receiver). */
const TRACING_RATIOS = (process.env.BENCH_TRACING ?? '').split(',').filter(Boolean).map(Number);

interface Result {
  target: string;
  scenario: Scenario['name'];
  requestsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  non2xx: number;
  statementsPerRequest: number | null;
  peakRssMb: number;
}

// --- database ----------------------------------------------------------------------------------

interface BenchDatabase {
  url: string;
  /**
   * A copy of the seeded database (`create database ... template`) for one app: each instance is
   * declared the only one on its database (SINGLE_INSTANCE), as the instances of the bench share nothing.
   */
  copy(): Promise<string>;
  drop(): Promise<void>;
}

async function createDatabase(): Promise<BenchDatabase> {
  let serverUrl = process.env.DATABASE_URL;
  let stopEmbedded: (() => Promise<void>) | null = null;
  if (!serverUrl) {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'paygraph-bench-'));
    const embedded = await startEmbeddedPostgres({ dataDir, ephemeral: true });
    serverUrl = embedded.serverUrl;
    stopEmbedded = async () => {
      await embedded.stop();
      await rm(dataDir, { recursive: true, force: true });
    };
    log(`embedded PostgreSQL at ${new URL(serverUrl).host}`);
  }
  const name = `paygraph_bench_${randomBytes(4).toString('hex')}`;
  const admin = new URL(serverUrl);
  admin.pathname = '/postgres';
  const client = new pg.Client({ connectionString: admin.toString() });
  await client.connect();
  await client.query(`create database ${name}`);
  await client.end();
  const at = (database: string) => {
    const url = new URL(serverUrl);
    url.pathname = `/${database}`;
    return url.toString();
  };
  const adminQuery = async (sql: string) => {
    const c = new pg.Client({ connectionString: admin.toString() });
    await c.connect();
    try {
      await c.query(sql);
    } finally {
      await c.end();
    }
  };
  const copies: string[] = [];
  return {
    url: at(name),
    async copy() {
      const copyName = `${name}_${copies.length + 1}`;
      await adminQuery(`create database ${copyName} template ${name}`);
      copies.push(copyName);
      return at(copyName);
    },
    drop: async () => {
      for (const database of [...copies, name]) await adminQuery(`drop database if exists ${database} with (force)`);
      await stopEmbedded?.();
    },
  };
}

// --- servers -----------------------------------------------------------------------------------

async function startApp(
  db: BenchDatabase,
  cache: boolean,
  extraEnv: Record<string, string> = {},
  label?: string,
  runtime: { node?: string; preload?: string[]; flags?: string[]; /** Another checkout's build. */ cwd?: string } = {},
): Promise<Running> {
  const production = productionNodeArgs();
  const args = runtime.flags ? [...runtime.flags, ...production.filter((a) => !a.startsWith('--'))] : production;
  const databaseUrl = await db.copy();
  return startProcess(
    label ?? (cache ? 'app (cache on)' : 'app'),
    [...(runtime.preload ?? []), ...args],
    { ...extraEnv, ...appEnv(databaseUrl), CACHE_ENABLED: cache ? 'true' : 'false' },
    /ready at/,
    runtime.node,
    runtime.cwd,
  );
}

/** An OTLP/HTTP receiver that takes traces and drops them, counting spans: what a collector costs the app. */
async function startTraceReceiver(): Promise<{ url: string; spans: () => number; close: () => Promise<void> }> {
  let spans = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      try {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { resourceSpans?: { scopeSpans: { spans: unknown[] }[] }[] };
        for (const rs of body.resourceSpans ?? []) for (const ss of rs.scopeSpans) spans += ss.spans.length;
      } catch {
        // not traces; dropped all the same
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    spans: () => spans,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

function startBaseline(databaseUrl: string): Promise<Running> {
  return startProcess('baseline', ['--import', 'tsx', 'bench/baseline-server.ts'], { DATABASE_URL: databaseUrl, JWT_SECRET }, /listening/);
}

/** Peak resident memory of a process while `work` runs, sampled every 100 ms from /proc. */
async function withPeakRss<T>(pid: number, work: () => Promise<T>): Promise<{ result: T; peakRssMb: number }> {
  let peak = 0;
  const sample = () => {
    try {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
      peak = Math.max(peak, kb);
    } catch {
      // process gone or no /proc: report 0
    }
  };
  sample();
  const timer = setInterval(sample, 100);
  try {
    const result = await work();
    sample();
    return { result, peakRssMb: Math.round(peak / 1024) };
  } finally {
    clearInterval(timer);
  }
}

// --- load --------------------------------------------------------------------------------------

interface Tokens {
  admin: string;
  users: string[];
}

function body(scenario: Scenario, i: number): string {
  const query = typeof scenario.query === 'function' ? scenario.query(i) : scenario.query;
  return JSON.stringify({ operationName: scenario.name, query, variables: scenario.variables(i) });
}

/** The first `count` user ids after the admin that the seed leaves active (it deactivates ids divisible by 10). */
function activeUserIds(count: number): number[] {
  const ids: number[] = [];
  for (let id = 2; ids.length < count; id++) if (id % 10 !== 0) ids.push(id);
  return ids;
}

function tokenFor(scenario: Scenario, tokens: Tokens, i: number): string {
  return scenario.token === 'admin' ? tokens.admin : tokens.users[i % tokens.users.length]!;
}

async function post(url: string, scenario: Scenario, tokens: Tokens, i: number): Promise<unknown> {
  const res = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${tokenFor(scenario, tokens, i)}` },
    body: body(scenario, i),
  });
  return res.json();
}

function drive(url: string, scenario: Scenario, tokens: Tokens, options: { duration?: number; amount?: number }): Promise<autocannon.Result> {
  return postLoad(url, { connections: CONNECTIONS, ...options, progress: !options.amount }, (n) => ({
    headers: { 'content-type': 'application/json', authorization: `Bearer ${tokenFor(scenario, tokens, n)}` },
    body: body(scenario, n),
  })).done;
}

interface Target {
  name: Result['target'];
  server: Running;
}

/**
 * One scenario on every target, interleaved: after each target's warm-up, SLICES rounds in which each
 * target gets DURATION / SLICES seconds in turn. A shared machine's speed drifts over tens of seconds;
 * interleaving makes every target see the same drift, so the ratios stay comparable. Requests/s is
 * over all slices; p50 and p99 are the slices' percentiles weighted by their requests.
 */
async function measureInterleaved(targets: Target[], scenario: Scenario, tokens: Tokens): Promise<Result[]> {
  for (const { name, server } of targets) {
    // Warm-up: JIT, pools, and for a cached run every distinct key once.
    await drive(server.url, scenario, tokens, isWarm(name) ? { amount: Math.max(scenario.distinct, CONNECTIONS * 50) } : { duration: WARMUP });
  }
  const before = await Promise.all(targets.map(({ name, server }) => (name === 'baseline' ? null : statementStats(server.url, scenario.name))));
  const slices: { result: autocannon.Result; peakRssMb: number }[][] = targets.map(() => []);
  const slice = DURATION / SLICES;
  log(`${scenario.name}: ${targets.map((t) => t.name).join(', ')}; ${SLICES} x ${slice}s each, interleaved, at ${CONNECTIONS} connections`);
  for (let round = 0; round < SLICES; round++) {
    for (const [i, { server }] of targets.entries()) {
      slices[i]!.push(await withPeakRss(server.child.pid!, () => drive(server.url, scenario, tokens, { duration: slice })));
    }
  }
  return Promise.all(
    targets.map(async ({ name, server }, i) => {
      const runs = slices[i]!;
      const requests = runs.reduce((n, r) => n + r.result.requests.total, 0);
      const seconds = runs.reduce((n, r) => n + r.result.duration, 0);
      const weighted = (pick: (r: autocannon.Result) => number) =>
        Math.round(runs.reduce((sum, r) => sum + pick(r.result) * r.result.requests.total, 0) / Math.max(requests, 1));
      let statementsPerRequest: number | null = null;
      if (before[i]) {
        const after = await statementStats(server.url, scenario.name);
        const count = after.count - before[i]!.count;
        statementsPerRequest = count > 0 ? Math.round(((after.sum - before[i]!.sum) / count) * 100) / 100 : null;
      }
      return {
        target: name,
        scenario: scenario.name,
        requestsPerSec: Math.round(requests / seconds),
        p50Ms: weighted((r) => r.latency.p50),
        p99Ms: weighted((r) => r.latency.p99),
        errors: runs.reduce((n, r) => n + r.result.errors + r.result.timeouts, 0),
        non2xx: runs.reduce((n, r) => n + r.result.non2xx, 0),
        statementsPerRequest,
        peakRssMb: Math.max(...runs.map((r) => r.peakRssMb)),
      };
    }),
  );
}

/** An answer without what only the app adds: `extensions.cost`, its client's budget (see docs/access.md, Limits). */
function withoutCost(answer: unknown): unknown {
  const { extensions, ...rest } = answer as { extensions?: Record<string, unknown> };
  if (!extensions) return answer;
  const { cost: _cost, ...others } = extensions;
  return Object.keys(others).length > 0 ? { ...rest, extensions: others } : rest;
}

/** The app must answer exactly what the baseline answers, or the comparison means nothing. */
async function checkSameAnswers(app: Running, baseline: Running, scenario: Scenario, tokens: Tokens): Promise<void> {
  for (const i of [0, 1, 7, 123]) {
    const [a, b] = await Promise.all([post(app.url, scenario, tokens, i).then(withoutCost), post(baseline.url, scenario, tokens, i)]);
    if (!isDeepStrictEqual(a, b)) {
      throw new Error(`${scenario.name} #${i}: the app and the baseline disagree\napp:      ${JSON.stringify(a).slice(0, 400)}\nbaseline: ${JSON.stringify(b).slice(0, 400)}`);
    }
  }
}

// --- report ------------------------------------------------------------------------------------

function table(results: Result[]): string {
  const base = new Map(results.filter((r) => r.target === 'baseline').map((r) => [r.scenario, r.requestsPerSec]));
  const off = new Map(results.filter((r) => r.target === 'app').map((r) => [r.scenario, r.requestsPerSec]));
  const header = '| scenario | target | req/s | p50 ms | p99 ms | errors | SQL/req | peak RSS MB | x baseline | x cache off |';
  const rows = results.map((r) => {
    const ratio = base.get(r.scenario) ? (r.requestsPerSec / base.get(r.scenario)!).toFixed(2) : '';
    const vsOff = isWarm(r.target) && off.get(r.scenario) ? (r.requestsPerSec / off.get(r.scenario)!).toFixed(2) : '';
    return `| ${r.scenario} | ${r.target} | ${r.requestsPerSec} | ${r.p50Ms} | ${r.p99Ms} | ${r.errors + r.non2xx} | ${r.statementsPerRequest ?? ''} | ${r.peakRssMb} | ${r.target === 'baseline' ? '1.00' : ratio} | ${vsOff} |`;
  });
  return [header, '|---|---|---|---|---|---|---|---|---|---|', ...rows].join('\n');
}

async function main(): Promise<void> {
  const only = process.env.BENCH_ONLY?.split(',');
  const scenarios = SCENARIOS.filter((s) => !only || only.includes(s.name));
  const db = await createDatabase();
  const servers: Running[] = [];
  try {
    log(`seeding ${USERS} users x ${PAYMENTS_PER_USER} payments`);
    const { orm } = await initORM({ databaseUrl: db.url, quiet: true });
    await seedDemoData(orm.em.fork(), { users: USERS, paymentsPerUser: PAYMENTS_PER_USER });
    await orm.em.fork().getConnection().execute('vacuum analyze');
    await orm.close(true);

    const key = secretKey(JWT_SECRET);
    const tokens: Tokens = {
      admin: await signToken(key, { id: 1, role: Role.ADMIN }, 3600),
      // Active users only: the seed deactivates every tenth, and a deactivated user's token is refused.
      users: await Promise.all(activeUserIds(TOKEN_USERS).map((id) => signToken(key, { id, role: Role.USER }, 3600))),
    };

    const results: Result[] = [];
    const baseline = await startBaseline(await db.copy());
    servers.push(baseline);
    const app = await startApp(db, false);
    servers.push(app);
    for (const scenario of scenarios) await checkSameAnswers(app, baseline, scenario, tokens);
    log('the app and the baseline give the same answers for every scenario');
    // The cache-on server runs beside the others (idle but for its own slices), so that its figures
    // are interleaved with the cache-off ones they are compared with.
    const cached = scenarios.some((s) => WARM_SCENARIOS.includes(s.name)) ? await startApp(db, true, { RESPONSE_CACHE_ENABLED: 'false' }) : null;
    if (cached) servers.push(cached);
    const responseCached = scenarios.some((s) => RESPONSE_CACHE_SCENARIOS.includes(s.name)) ? await startApp(db, true, {}, 'app (response cache on)') : null;
    if (responseCached) servers.push(responseCached);
    const receiver = TRACING_RATIOS.length > 0 ? await startTraceReceiver() : null;
    const traced: Target[] = [];
    for (const ratio of TRACING_RATIOS) {
      const name = `app (tracing ${Math.round(ratio * 100)}%)`;
      const server = await startApp(db, false, { OTEL_EXPORTER_OTLP_ENDPOINT: receiver!.url, OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: String(ratio) }, name);
      servers.push(server);
      traced.push({ name, server });
    }
    // The same build on other Nodes, and with an async context per request, cache off like `app`.
    const variants: Target[] = [];
    for (const node of COMPARE_NODES) {
      const name = `app (node ${nodeVersion(node)})`;
      variants.push({ name, server: await startApp(db, false, {}, name, { node }) });
    }
    if (LIMITS_OFF) {
      const name = 'app (limits off)';
      variants.push({ name, server: await startApp(db, false, { RATE_LIMIT_ENABLED: 'false' }, name) });
    }
    if (COMPARE_BUILD) {
      const name = `app (${path.basename(COMPARE_BUILD)})`;
      variants.push({ name, server: await startApp(db, false, {}, name, { cwd: COMPARE_BUILD }) });
    }
    for (const flags of COMPARE_FLAGS) {
      const name = `app (${flags})`;
      variants.push({ name, server: await startApp(db, false, {}, name, { flags: flags.split(/\s+/) }) });
    }
    if (ASYNC_CONTEXT) {
      for (const node of [SERVER_NODE, ...COMPARE_NODES]) {
        const name = `app (async context, node ${nodeVersion(node)})`;
        variants.push({ name, server: await startApp(db, false, {}, name, { node, preload: ['--import', path.join(root, 'bench/async-context.mjs')] }) });
      }
    }
    servers.push(...variants.map((v) => v.server));
    for (const scenario of scenarios) {
      const targets: Target[] = [
        { name: 'baseline', server: baseline },
        { name: 'app', server: app },
        ...traced,
        ...variants,
      ];
      if (cached && WARM_SCENARIOS.includes(scenario.name)) targets.push({ name: QUERY_CACHE_WARM, server: cached });
      if (responseCached && RESPONSE_CACHE_SCENARIOS.includes(scenario.name)) targets.push({ name: RESPONSE_CACHE_WARM, server: responseCached });
      results.push(...(await measureInterleaved(targets, scenario, tokens)));
    }
    // Cache-warm rows last, as groups (the sort is stable).
    const rank = (target: string) => (target === RESPONSE_CACHE_WARM ? 2 : target === QUERY_CACHE_WARM ? 1 : 0);
    results.sort((a, b) => rank(a.target) - rank(b.target));

    if (receiver) {
      log(`trace receiver took ${receiver.spans()} spans`);
      await receiver.close();
    }
    const serverNode = nodeVersion(SERVER_NODE);
    const report = `Servers (app and baseline) on Node ${serverNode}${process.env.BENCH_NODE ? ' (BENCH_NODE)' : ' (production\'s: runtime/node.sh)'}.\n\n${table(results)}`;
    process.stdout.write(`\n${report}\n\n`);
    const machine = { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, memoryGb: Math.round(totalmem() / 2 ** 30), node: serverNode };
    await mkdir(path.join(root, 'bench/results'), { recursive: true });
    await writeFile(
      path.join(root, 'bench/results/latest.json'),
      `${JSON.stringify({ date: new Date().toISOString(), machine, connections: CONNECTIONS, durationSeconds: DURATION, results, table: report }, null, 2)}\n`,
    );
    log(`machine: ${machine.cores} x ${machine.cpu}, ${machine.memoryGb} GB, Node ${machine.node}; written to bench/results/latest.json`);
  } finally {
    for (const s of servers) await s.stop().catch(() => undefined);
    await db.drop();
  }
}

// `npm run bench -- --scale`: the reads at two sizes of the data instead (bench/scale.ts).
(process.argv.includes('--scale') ? import('./scale.js').then((m) => m.main()) : main()).catch((err) => {
  console.error(err);
  process.exit(1);
});
