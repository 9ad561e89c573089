import { loadConfig, type Config } from '../../src/config.js';
import { createApp, type App, type AppOptions } from '../../src/app.js';
import { seedDemoData, type SeedOptions } from '../../src/db/seeders/demo.seeder.js';
import { secretKey, signToken, type Viewer } from '../../src/modules/auth/auth.js';
import { Role } from '../../src/modules/user/user.entity.js';
import { createTestDatabase, type TestDatabase } from './database.js';

export const TEST_JWT_SECRET = 'test-secret-that-is-at-least-32-characters-long';

export interface GqlResult<TData = Record<string, any>> {
  status: number;
  body: { data?: TData | null; errors?: { message: string; path?: string[]; extensions?: Record<string, any> }[]; extensions?: Record<string, any> };
  /** Statements the server attributed to this request (from `extensions.sql`). */
  statements: number;
  queries: string[];
  headers: Record<string, unknown>;
}

export interface TestApp {
  app: App;
  db: TestDatabase;
  config: Config;
  token(viewer: Viewer): Promise<string>;
  adminToken(): Promise<string>;
  /** A USER token for the given user id. */
  userToken(id: number): Promise<string>;
  gql<TData = Record<string, any>>(
    query: string,
    options?: { variables?: Record<string, unknown>; token?: string; headers?: Record<string, string> },
  ): Promise<GqlResult<TData>>;
  /** Runs SQL outside any request (setup and checks). */
  sql<T = Record<string, unknown>>(text: string, params?: unknown[]): Promise<T[]>;
  close(): Promise<void>;
}

/** One GraphQL answer as a client saw it, with what the server said of it. */
export interface Posted {
  status: number;
  body: { data?: Record<string, any> | null; errors?: { message: string; extensions?: Record<string, any> }[]; extensions?: Record<string, any> };
  /** Statements the server sent for it (`extensions.sql`, with DEBUG_SQL). */
  statements: number;
  /** The server each statement ran on: `primary`, `replica1`... */
  targets: string[];
  /** The `x-response-cache` header. */
  cache: string | undefined;
  /** Statement texts (`extensions.sql`). */
  queries: string[];
  headers: Record<string, unknown>;
}

/** One POST /graphql to an app instance, as a client sends it (for tests that drive several instances). */
export async function postTo(
  app: App,
  query: string,
  options: { token?: string; variables?: Record<string, unknown>; headers?: Record<string, string>; /** The client's address as the server sees it (default 127.0.0.1). */ remoteAddress?: string } = {},
): Promise<Posted> {
  const res = await app.fastify.inject({
    method: 'POST',
    url: '/graphql',
    remoteAddress: options.remoteAddress,
    headers: { 'content-type': 'application/json', ...(options.token ? { authorization: `Bearer ${options.token}` } : {}), ...options.headers },
    payload: JSON.stringify({ query, variables: options.variables }),
  });
  const body = res.json();
  return {
    status: res.statusCode,
    body,
    statements: body.extensions?.sql?.statements ?? 0,
    targets: body.extensions?.sql?.targets ?? [],
    cache: res.headers['x-response-cache'] as string | undefined,
    queries: body.extensions?.sql?.queries ?? [],
    headers: res.headers,
  };
}

/**
 * In the `production caches` project of vitest.config.ts (PAYGRAPH_TEST_CACHES=production), test apps
 * run with the caches as production has them (query cache and response cache on), so the suites that
 * prove rules (authorization, pagination, writes, audit, payments, subscriptions) prove them on the
 * path users get, not only on the cache-off path that statement budgets are measured on.
 */
export const productionCaches = process.env.PAYGRAPH_TEST_CACHES === 'production';

/** The settings every test app runs with, on the database at `databaseUrl`. */
export function testEnv(databaseUrl: string): Record<string, string> {
  return {
    NODE_ENV: 'test',
    DATABASE_URL: databaseUrl,
    JWT_SECRET: TEST_JWT_SECRET,
    DEBUG_SQL: 'true',
    LOG_LEVEL: 'silent',
    DB_POOL_MAX: '5',
    // Statement budgets are about SQL, and many tests write with plain SQL behind the API's back:
    // the query cache is off unless a test (or the production-caches project) turns it on.
    CACHE_ENABLED: productionCaches ? 'true' : 'false',
    // Any N+1 fails the request, so a regression anywhere fails some test.
    N_PLUS_ONE: 'error',
    // Many suites make dozens of payments of one user as their setup: card-testing protection stays on
    // (every createPayment runs its checked insert) with room for them; its own tests set it tight.
    PAYMENT_ATTEMPTS_PER_MINUTE: '100000',
    PAYMENT_ATTEMPTS_MAX_FAILURES: '100000',
  };
}


/**
 * A real app on a fresh database of its own: migrations applied, optionally seeded, driven through
 * Fastify's `inject` (the real HTTP route, context and plugins; no socket). Every GraphQL call checks
 * that each statement the ORM ran during it was attributed to it, so the counts are complete.
 */
export async function createTestApp(
  options: { seed?: SeedOptions; env?: Record<string, string>; appOptions?: AppOptions } = {},
): Promise<TestApp> {
  const db = await createTestDatabase();
  const config = loadConfig({
    ...testEnv(db.url),
    // A fresh database gets a fresh cache namespace: a shared Redis keeps entries of earlier runs (and of
    // other test files) whose ids mean other rows here. Tests of instances sharing a cache pass their own.
    CACHE_NAMESPACE: db.name,
    ...options.env,
  });
  const app = await createApp(config, options.appOptions);
  if (options.seed) await seedDemoData(app.orm.em.fork(), options.seed);
  const key = secretKey(TEST_JWT_SECRET);
  const token = (viewer: Viewer) => signToken(key, viewer, 3600);

  return {
    app,
    db,
    config,
    token,
    adminToken: () => token({ id: 1, role: Role.ADMIN }),
    userToken: (id) => token({ id, role: Role.USER }),
    async gql(query, { variables, token, headers } = {}) {
      const unattributedBefore = app.sqlTotals.unattributed;
      const { status, body, statements, queries, headers: responseHeaders } = await postTo(app, query, { token, variables, headers });
      if (app.sqlTotals.unattributed !== unattributedBefore) {
        throw new Error('a statement ran during the request without being attributed to it');
      }
      // The body as the caller types its data.
      return { status, body: body as GqlResult<never>['body'], statements, queries, headers: responseHeaders };
    },
    async sql(text, params = []) {
      const rows = await app.orm.em.fork().getConnection().execute(text, params);
      // A write behind the API's back is a test's setup of data that "was already there": with the
      // caches on, what they held from before it is dropped, as if the data had always been so.
      if (productionCaches && !/^\s*select\b/i.test(text)) await app.cache.clear();
      return rows as never;
    },
    async close() {
      // Leave nothing behind in a shared Redis (best effort: some tests stop or cut Redis on purpose).
      if (config.redisUrl) await app.cache?.clear().catch(() => undefined);
      await app.close();
      await db.drop();
    },
  };
}
