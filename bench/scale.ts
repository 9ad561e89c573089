/**
 * `npm run bench -- --scale`: what each read costs at two sizes of the data, and what writes cost.
 * Not run in CI (seeding 5.5 million payments takes minutes).
 *
 * Sizes (BENCH_SCALE_SIZES, `<users>x<payments each>+<payments of one large user>`, comma-separated):
 * 1,000 users x 20 payments + one user with 2,000, and 200,000 x 25 + one with 500,000 (5.5 million
 * payments). Each size is a database of its own on DATABASE_URL's server (else an embedded one kept
 * under .data/bench-scale), migrated by the build that reads it, seeded once and kept for the next
 * run (BENCH_SCALE_FRESH=1 seeds them again). With BENCH_COMPARE_BUILD=<dir> (another checkout, built)
 * the same sizes are made and read with that build too: a before/after, each read interleaved
 * request by request across the builds.
 *
 * Reads: single requests one after another, production build, caches off, BENCH_SCALE_RUNS (7) after
 * two warm-ups; the median (and the slowest) of each, with the statements each cost. Writes:
 * `createPayment` against a local Stripe double (the real SDK), 16 connections, BENCH_SCALE_WRITE_SECONDS
 * (10) per build in two interleaved slices. And with a compare build, the current migrations applied
 * to a copy of the compare build's largest database while that build serves `createPayment` on it:
 * how long each migration and its longest statements took, and what the writes saw meanwhile.
 */
import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import autocannon from 'autocannon';
import pg from 'pg';
import { MikroORM } from '@mikro-orm/postgresql';
import { migrate, ormOptions } from '../src/db/orm.js';
import { startEmbeddedPostgres } from '../src/db/embedded.js';
import { seedDemoData } from '../src/db/seeders/demo.seeder.js';
import { encodePaymentCursor } from '../src/core/pagination.js';
import { secretKey, signToken } from '../src/modules/auth/auth.js';
import { Role } from '../src/modules/user/user.entity.js';
import { stripeEnvFor, StripeDouble } from '../tests/helpers/stripe-double.js';
import { appEnv, JWT_SECRET, log, nodeVersion, postLoad, productionNodeArgs, root, SERVER_NODE, startProcess, statementStats, type Running } from './servers.js';

interface Size {
  users: number;
  payments: number;
  large: number;
  label: string;
}

const SIZES: Size[] = (process.env.BENCH_SCALE_SIZES ?? '1000x20+2000,200000x25+500000').split(',').map((spec) => {
  const m = /^(\d+)x(\d+)\+(\d+)$/.exec(spec.trim());
  if (!m) throw new Error(`BENCH_SCALE_SIZES: ${spec} is not <users>x<payments>+<large user's payments>`);
  const [users, payments, large] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const total = users * payments + large;
  return { users, payments, large, label: total >= 1e6 ? `${(total / 1e6).toFixed(1)} M` : `${Math.round(total / 1000)} k` };
});
const RUNS = Number(process.env.BENCH_SCALE_RUNS ?? 7);
const WRITE_SECONDS = Number(process.env.BENCH_SCALE_WRITE_SECONDS ?? 10);
const CONNECTIONS = 16;
const FRESH = process.env.BENCH_SCALE_FRESH === '1';
const COMPARE_BUILD = process.env.BENCH_COMPARE_BUILD ? path.resolve(process.env.BENCH_COMPARE_BUILD) : null;

interface Build {
  label: string;
  dir: string;
}

/** What a read needs of the data: the large user, a deep cursor in their payments, tokens. */
interface Context {
  largeUserId: number;
  deepCursor: string;
  deepOffset: number;
  admin: string;
  largeUser: string;
}

interface Read {
  name: string;
  what: string;
  token: (c: Context) => string;
  query: (c: Context) => string;
}

const READS: Read[] = [
  { name: 'S1', what: '`payments(first: 20)` (newest, all users)', token: (c) => c.admin, query: () => 'query S1 { payments(first: 20) { nodes { id amount status user { email } } } }' },
  { name: 'S2', what: '`payments(first: 1) { totalCount }`', token: (c) => c.admin, query: () => 'query S2 { payments(first: 1) { totalCount } }' },
  { name: 'S3', what: "the large user's `paymentStats`", token: (c) => c.admin, query: (c) => `query S3 { user(id: "${c.largeUserId}") { paymentStats { status currency count totalAmount } } }` },
  { name: 'S4', what: "the large user's `paymentCount(status: COMPLETED)`", token: (c) => c.admin, query: (c) => `query S4 { user(id: "${c.largeUserId}") { paymentCount(status: COMPLETED) } }` },
  {
    name: 'S5',
    what: "the large user's `payments(first: 10, status: PROCESSING)` (none exist)",
    token: (c) => c.admin,
    query: (c) => `query S5 { user(id: "${c.largeUserId}") { payments(first: 10, status: PROCESSING) { nodes { id } } } }`,
  },
  { name: 'S6', what: '`users(first: 20, filter: { emailContains: "99999" })`', token: (c) => c.admin, query: () => 'query S6 { users(first: 20, filter: { emailContains: "99999" }) { nodes { id email } } }' },
  { name: 'S7', what: 'Q1: `users(first: 100)` with `payments(first: 10)`', token: (c) => c.admin, query: () => 'query S7 { users(first: 100) { nodes { id email payments(first: 10) { nodes { id amount status } } } } }' },
  {
    name: 'S8',
    what: "the large user's `paymentHistory(first: 20)`, a deep page",
    token: (c) => c.largeUser,
    query: (c) => `query S8 { paymentHistory(first: 20, after: "${c.deepCursor}") { nodes { id amount } } }`,
  },
  {
    name: 'S9',
    what: "the large user's `User.payments(first: 10)`, a deep page",
    token: (c) => c.admin,
    query: (c) => `query S9 { user(id: "${c.largeUserId}") { payments(first: 10, after: "${c.deepCursor}") { nodes { id } } } }`,
  },
  {
    name: 'S10',
    what: '`payments(userId, status: COMPLETED, first: 20)` (the large user)',
    token: (c) => c.admin,
    query: (c) => `query S10 { payments(first: 20, userId: "${c.largeUserId}", status: COMPLETED) { nodes { id } } }`,
  },
  { name: 'S11', what: '`users(first: 20, filter: { isActive: false })`', token: (c) => c.admin, query: () => 'query S11 { users(first: 20, filter: { isActive: false }) { nodes { id } } }' },
  { name: 'S12', what: '`users(first: 1) { totalCount }`', token: (c) => c.admin, query: () => 'query S12 { users(first: 1) { totalCount } }' },
];

// --- databases ---------------------------------------------------------------------------------

interface Server {
  url: (database: string) => string;
  query: (database: string, sql: string, params?: unknown[]) => Promise<Record<string, any>[]>;
  stop: () => Promise<void>;
}

async function server(): Promise<Server> {
  let serverUrl = process.env.DATABASE_URL;
  let stop = async () => {};
  if (!serverUrl) {
    const embedded = await startEmbeddedPostgres({ dataDir: path.join(root, '.data/bench-scale'), log });
    serverUrl = embedded.serverUrl;
    stop = () => embedded.stop();
  }
  const url = (database: string) => {
    const u = new URL(serverUrl);
    u.pathname = `/${database}`;
    return u.toString();
  };
  return {
    url,
    async query(database, sql, params = []) {
      const client = new pg.Client({ connectionString: url(database) });
      await client.connect();
      try {
        return (await client.query(sql, params)).rows;
      } finally {
        await client.end();
      }
    },
    stop,
  };
}

const databaseName = (size: Size, build: Build) => `paygraph_scale_${build.label.replace(/\W/g, '_')}_${size.users}x${size.payments}_${size.large}`;

/** The database of `size` as `build` made it: migrated by that build, then seeded (kept between runs). */
async function prepare(pgServer: Server, size: Size, build: Build): Promise<string> {
  const name = databaseName(size, build);
  const marker = `paygraph scale ${size.users}x${size.payments}+${size.large}`;
  const [existing] = await pgServer.query('postgres', 'select shobj_description(oid, \'pg_database\') as marker from pg_database where datname = $1', [name]);
  if (existing?.marker === marker && !FRESH) {
    log(`${name}: seeded before, kept`);
    return name;
  }
  await pgServer.query('postgres', `drop database if exists ${name} with (force)`);
  await pgServer.query('postgres', `create database ${name}`);
  const started = Date.now();
  // Migrated by the build's own script, as its deployment would (production mode needs the database alone).
  await run(SERVER_NODE, [path.join(build.dir, 'dist/scripts/migrate.js')], { NODE_ENV: 'production', DATABASE_URL: pgServer.url(name) }, build.dir);
  // Seeded by this checkout's seeder, on the build's schema (the seed writes only columns all builds have).
  const orm = await MikroORM.init({ ...ormOptions({ databaseUrl: pgServer.url(name), statementTimeoutMs: 0, quiet: true, poolMax: 2 }) });
  try {
    const seeded = await seedDemoData(orm.em.fork(), { users: size.users, paymentsPerUser: size.payments, largeUserPayments: size.large, progress: (line) => log(`${name}: ${line}`) });
    await orm.em.fork().getConnection().execute('vacuum analyze');
    log(`${name}: ${seeded.users} users and ${seeded.payments} payments seeded in ${Math.round((Date.now() - started) / 1000)} s`);
  } finally {
    await orm.close(true);
  }
  await pgServer.query('postgres', `comment on database ${name} is '${marker}'`);
  return name;
}

/** Runs a script to its end; fails with its output unless it exits 0. */
function run(node: string, args: string[], env: Record<string, string>, cwd: string): Promise<void> {
  const child = spawn(node, args, { cwd, env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (c) => (output += c));
  child.stderr.on('data', (c) => (output += c));
  return new Promise((resolve, reject) => child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${args.join(' ')} exited ${code}:\n${output}`)))));
}

// --- servers and requests ----------------------------------------------------------------------

function startApp(build: Build, databaseUrl: string, stripe: StripeDouble, label: string): Promise<Running> {
  return startProcess(
    label,
    productionNodeArgs(),
    {
      ...stripeEnvFor(stripe),
      ...appEnv(databaseUrl),
      CACHE_ENABLED: 'false',
      RESPONSE_CACHE_ENABLED: 'false',
      RECONCILE_INTERVAL_SECONDS: '0',
      // Large reads are what is measured: no limit of the API's cuts them short.
      DB_STATEMENT_TIMEOUT_MS: '60000',
    },
    /ready at/,
    SERVER_NODE,
    build.dir,
  );
}

async function post(url: string, query: string, token: string): Promise<{ ms: number; body: any }> {
  const started = performance.now();
  const res = await fetch(`${url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ query }) });
  const body = await res.json();
  return { ms: performance.now() - started, body };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const round = (x: number) => (x >= 100 ? Math.round(x) : Math.round(x * 10) / 10);

interface ReadResult {
  read: string;
  size: string;
  build: string;
  medianMs: number;
  maxMs: number;
  statements: number | null;
}

async function measureReads(targets: { build: Build; app: Running }[], size: Size, context: Context): Promise<ReadResult[]> {
  const results: ReadResult[] = [];
  for (const read of READS) {
    const query = read.query(context);
    const token = read.token(context);
    const answers = [];
    for (const { app } of targets) {
      for (let w = 0; w < 2; w++) {
        const { body } = await post(app.url, query, token);
        if (body.errors) throw new Error(`${read.name} on ${app.url}: ${JSON.stringify(body.errors).slice(0, 400)}`);
        if (w === 0) answers.push(JSON.stringify(body.data));
      }
    }
    if (new Set(answers).size > 1) throw new Error(`${read.name}: the builds disagree\n${answers.map((a) => a.slice(0, 300)).join('\n')}`);
    const before = await Promise.all(targets.map(({ app }) => statementStats(app.url, read.name)));
    const times: number[][] = targets.map(() => []);
    for (let r = 0; r < RUNS; r++) {
      for (const [i, { app }] of targets.entries()) times[i]!.push((await post(app.url, query, token)).ms);
    }
    for (const [i, { build, app }] of targets.entries()) {
      const after = await statementStats(app.url, read.name);
      const count = after.count - before[i]!.count;
      results.push({ read: read.name, size: size.label, build: build.label, medianMs: round(median(times[i]!)), maxMs: round(Math.max(...times[i]!)), statements: count > 0 ? Math.round(((after.sum - before[i]!.sum) / count) * 100) / 100 : null });
    }
    log(`${size.label} ${read.name}: ${results.slice(-targets.length).map((r) => `${r.build} ${r.medianMs} ms`).join(', ')}`);
  }
  return results;
}

let keys = 0;

/** createPayment from many users at once, each request with a key of its own. */
function writeLoad(url: string, tokens: string[], tag: string, options: { duration: number }): { done: Promise<autocannon.Result>; stop: () => void } {
  return postLoad(url, { connections: CONNECTIONS, duration: options.duration }, (n) => ({
    headers: { 'content-type': 'application/json', authorization: `Bearer ${tokens[n % tokens.length]}` },
    body: JSON.stringify({
      query: 'mutation W($input: CreatePaymentInput!) { createPayment(input: $input) { payment { id status } } }',
      variables: { input: { amount: 500 + (n % 9000), currency: 'usd', idempotencyKey: `scale-${tag}-${process.pid}-${++keys}` } },
    }),
  }));
}

interface WriteResult {
  size: string;
  build: string;
  requestsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  created: number;
}

async function measureWrites(targets: { build: Build; app: Running; database: string }[], size: Size, pgServer: Server, tokens: string[]): Promise<WriteResult[]> {
  const slices: autocannon.Result[][] = targets.map(() => []);
  const created: number[] = targets.map(() => 0);
  for (const { app } of targets) await writeLoad(app.url, tokens, 'warm', { duration: 2 }).done;
  for (let round = 0; round < 2; round++) {
    for (const [i, { app, database }] of targets.entries()) {
      const [{ before }] = await pgServer.query(database, 'select max(id) as before from payments');
      slices[i]!.push(await writeLoad(app.url, tokens, `${round}`, { duration: WRITE_SECONDS / 2 }).done);
      const [{ n }] = await pgServer.query(database, 'select count(*)::int as n from payments where id > $1', [before]);
      created[i]! += n;
      // The database is kept for the next run, whose reads must find the data as seeded (and the same in every build's).
      await pgServer.query(database, 'delete from payments where id > $1', [before]);
    }
  }
  return targets.map(({ build }, i) => {
    const runs = slices[i]!;
    const requests = runs.reduce((n, r) => n + r.requests.total, 0);
    const weighted = (pick: (r: autocannon.Result) => number) => Math.round(runs.reduce((s, r) => s + pick(r) * r.requests.total, 0) / Math.max(1, requests));
    return {
      size: size.label,
      build: build.label,
      requestsPerSec: Math.round(requests / runs.reduce((n, r) => n + r.duration, 0)),
      p50Ms: weighted((r) => r.latency.p50),
      p99Ms: weighted((r) => r.latency.p99),
      errors: runs.reduce((n, r) => n + r.errors + r.timeouts + r.non2xx, 0),
      created: created[i]!,
    };
  });
}

async function contextOf(pgServer: Server, database: string): Promise<Context & { userTokens: string[] }> {
  const key = secretKey(JWT_SECRET);
  const [{ id: largeUserId, n }] = await pgServer.query(database, 'select u.id, (select count(*)::int from payments p where p.user_id = u.id) as n from users u order by u.id desc limit 1');
  const deepOffset = Math.floor(n * 0.8);
  const [deep] = await pgServer.query(database, 'select id, (extract(epoch from created_at) * 1000)::float8 as ms from payments where user_id = $1 order by created_at desc, id desc offset $2 limit 1', [largeUserId, deepOffset]);
  const active = await pgServer.query(database, 'select id from users where is_active and deleted_at is null and id > 1 order by id limit 200');
  return {
    largeUserId,
    deepOffset,
    deepCursor: encodePaymentCursor({ createdAt: deep!.ms, id: deep!.id }),
    admin: await signToken(key, { id: 1, role: Role.ADMIN }, 7200),
    largeUser: await signToken(key, { id: largeUserId, role: Role.USER }, 7200),
    userTokens: await Promise.all(active.map((u) => signToken(key, { id: u.id, role: Role.USER }, 7200))),
  };
}

// --- migrations at size ------------------------------------------------------------------------

interface MigrationResult {
  migrations: { name: string; seconds: number }[];
  longestStatements: { sql: string; ms: number }[];
  writes: { requests: number; errors: number; p50Ms: number; p99Ms: number; maxMs: number };
}

/**
 * The current migrations applied to a copy of `compare`'s database of `size`, while `compare`'s build
 * serves createPayment on that copy (a deployment: the old version serves while the new one migrates).
 */
async function measureMigration(pgServer: Server, size: Size, compare: Build, stripe: StripeDouble, tokens: string[]): Promise<MigrationResult> {
  const source = databaseName(size, compare);
  const copy = `${source}_migrating`;
  await pgServer.query('postgres', `drop database if exists ${copy} with (force)`);
  log(`copying ${source} to measure the migrations on it`);
  await pgServer.query('postgres', `create database ${copy} template ${source}`);
  const app = await startApp(compare, pgServer.url(copy), stripe, `app (${compare.label}) on the copy`);
  try {
    const load = writeLoad(app.url, tokens, 'migrating', { duration: 3600 });
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const lines: { at: number; text: string }[] = [];
    log('applying the current migrations while the old build serves writes');
    await migrate(
      { databaseUrl: pgServer.url(copy), quiet: false },
      { lockTimeoutMs: 10_000, waitMs: 60_000 },
      { debug: ['query', 'info'], logger: (text: string) => lines.push({ at: Date.now(), text }) },
    );
    load.stop();
    const writes = await load.done;
    const migrations: { name: string; seconds: number }[] = [];
    let current: { name: string; at: number } | null = null;
    const statements: { sql: string; ms: number }[] = [];
    for (const { at, text } of lines) {
      const plain = text.replace(/\x1b\[[0-9;]*m/g, '');
      const processing = /Processing '(\w+)'/.exec(plain);
      const applied = /Applied '(\w+)'/.exec(plain);
      if (processing) current = { name: processing[1]!, at };
      if (applied && current) migrations.push({ name: applied[1]!, seconds: Math.round((at - current.at) / 100) / 10 });
      const took = /\[query\] (.*) \[took (\d+) ms/.exec(plain);
      if (took) statements.push({ sql: took[1]!.replace(/\s+/g, ' ').slice(0, 110), ms: Number(took[2]) });
    }
    return {
      migrations,
      longestStatements: statements.sort((a, b) => b.ms - a.ms).slice(0, 12),
      writes: { requests: writes.requests.total, errors: writes.errors + writes.timeouts + writes.non2xx, p50Ms: writes.latency.p50, p99Ms: writes.latency.p99, maxMs: writes.latency.max },
    };
  } finally {
    await app.stop();
    await pgServer.query('postgres', `drop database if exists ${copy} with (force)`);
  }
}

// --- report ------------------------------------------------------------------------------------

function readsTable(results: ReadResult[], builds: Build[]): string {
  const columns = SIZES.flatMap((s) => builds.map((b) => ({ size: s.label, build: b.label })));
  const header = `| read (ADMIN unless said) | ${columns.map((c) => `${c.size}${builds.length > 1 ? `, ${c.build}` : ''}: median (max) ms, SQL`).join(' | ')} |`;
  const rows = READS.map((read) => {
    const cells = columns.map((c) => {
      const r = results.find((x) => x.read === read.name && x.size === c.size && x.build === c.build);
      return r ? `${r.medianMs} (${r.maxMs}), ${r.statements ?? '?'}` : '';
    });
    return `| ${read.what} | ${cells.join(' | ')} |`;
  });
  return [header, `|---|${columns.map(() => '---|').join('')}`, ...rows].join('\n');
}

export async function main(): Promise<void> {
  const builds: Build[] = [{ label: 'this checkout', dir: root }, ...(COMPARE_BUILD ? [{ label: path.basename(COMPARE_BUILD), dir: COMPARE_BUILD }] : [])];
  const pgServer = await server();
  const stripe = await StripeDouble.start();
  const reads: ReadResult[] = [];
  const writes: WriteResult[] = [];
  let migration: MigrationResult | null = null;
  try {
    for (const size of SIZES) for (const build of builds) await prepare(pgServer, size, build);
    for (const size of SIZES) {
      const databases = builds.map((b) => databaseName(size, b));
      const context = await contextOf(pgServer, databases[0]!);
      const targets = [];
      for (const [i, build] of builds.entries()) targets.push({ build, database: databases[i]!, app: await startApp(build, pgServer.url(databases[i]!), stripe, `app (${build.label})`) });
      try {
        reads.push(...(await measureReads(targets, size, context)));
        writes.push(...(await measureWrites(targets, size, pgServer, context.userTokens)));
      } finally {
        for (const t of targets) await t.app.stop();
      }
    }
    if (COMPARE_BUILD) {
      const largest = SIZES.reduce((a, b) => (a.users * a.payments + a.large >= b.users * b.payments + b.large ? a : b));
      const context = await contextOf(pgServer, databaseName(largest, builds[1]!));
      migration = await measureMigration(pgServer, largest, builds[1]!, stripe, context.userTokens);
    }
  } finally {
    await stripe.close();
    await pgServer.stop();
  }

  const writeRows = writes.map((w) => `| ${w.size} | ${w.build} | ${w.requestsPerSec} | ${w.p50Ms} | ${w.p99Ms} | ${w.errors} | ${w.created} |`);
  const report = [
    `Servers on Node ${nodeVersion(SERVER_NODE)}, production build, caches off; reads one at a time, ${RUNS} runs after 2 warm-ups.`,
    '',
    readsTable(reads, builds),
    '',
    `createPayment against the Stripe double, ${CONNECTIONS} connections, ${WRITE_SECONDS} s per build:`,
    '',
    '| size | build | req/s | p50 ms | p99 ms | errors | payments created |',
    '|---|---|---|---|---|---|---|',
    ...writeRows,
    ...(migration
      ? [
          '',
          `The current migrations on a copy of the ${builds[1]!.label} database at ${SIZES.at(-1)!.label}, while that build served createPayment on it:`,
          '',
          ...migration.migrations.map((m) => `- ${m.name}: ${m.seconds} s`),
          '',
          'Longest statements:',
          ...migration.longestStatements.map((s) => `- ${s.ms} ms: ${s.sql}`),
          '',
          `Writes meanwhile: ${migration.writes.requests} requests, ${migration.writes.errors} errors, p50 ${migration.writes.p50Ms} ms, p99 ${migration.writes.p99Ms} ms, max ${migration.writes.maxMs} ms.`,
        ]
      : []),
  ].join('\n');
  process.stdout.write(`\n${report}\n\n`);
  await mkdir(path.join(root, 'bench/results'), { recursive: true });
  await writeFile(path.join(root, 'bench/results/scale.json'), `${JSON.stringify({ date: new Date().toISOString(), sizes: SIZES, reads, writes, migration, table: report }, null, 2)}\n`);
  log('written to bench/results/scale.json');
}
