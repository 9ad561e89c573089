import { z } from 'zod';

const booleanFromEnv = z
  .enum(['true', 'false', '1', '0'], { message: 'must be true or false' })
  .transform((v) => v === 'true' || v === '1');

const postgresUrl = z
  .string()
  .regex(/^postgres(ql)?:\/\//, { message: 'must be a postgres:// or postgresql:// URL' });

/** A web origin exactly as browsers send it in `Origin`: http(s), host, optional port, nothing more. */
function isOrigin(value: string): boolean {
  try {
    const url = new URL(value);
    return (url.protocol === 'https:' || url.protocol === 'http:') && url.origin === value;
  } catch {
    return false;
  }
}

const variables = z.object({
  NODE_ENV: z.enum(['development', 'test', 'production']).default('development'),
  HOST: z.string().min(1).optional(),
  PORT: z.coerce.number().int().min(0).max(65535).default(4000),
  DATABASE_URL: postgresUrl.optional(),
  DATA_DIR: z.string().min(1).default('.data'),
  DATABASE_REPLICA_URLS: z
    .string()
    .transform((v) => v.split(',').map((u) => u.trim()).filter(Boolean))
    .pipe(z.array(postgresUrl))
    .optional(),
  DATABASE_POOLER: z.enum(['none', 'transaction']).default('none'),
  CORS_ORIGINS: z
    .string()
    .transform((v) => v.split(',').map((o) => o.trim()).filter(Boolean))
    .pipe(z.array(z.string().refine(isOrigin, { message: 'must list origins such as https://app.example.com (scheme, host and port only; no "*", no path)' })))
    .optional(),
  DATABASE_MIGRATION_URL: postgresUrl.optional(),
  DATABASE_REPLICA_MAX_LAG_MS: z.coerce.number().int().min(0).max(3_600_000).default(5000),
  DATABASE_REPLICA_CHECK_MS: z.coerce.number().int().min(50).max(600_000).default(1000),
  JWT_SECRET: z.string().optional(),
  OIDC_ISSUER: z.url({ protocol: /^https?$/ }).optional(),
  OIDC_AUDIENCE: z.string().min(1).optional(),
  OIDC_JWKS_URL: z.url({ protocol: /^https?$/ }).optional(),
  OIDC_NEW_USERS: z.enum(['link', 'create']).default('link'),
  OIDC_CLOCK_SKEW_SECONDS: z.coerce.number().int().min(0).max(300).default(60),
  OIDC_JWKS_MIN_INTERVAL_MS: z.coerce.number().int().min(100).max(3_600_000).default(30_000),
  JWT_TTL_SECONDS: z.coerce.number().int().positive().max(86_400, { message: 'must be at most 86400 (one day): a token outlives every revocation it is not checked against' }).default(3600),
  SHUTDOWN_TIMEOUT_MS: z.coerce.number().int().positive().default(10000),
  SHUTDOWN_GRACE_MS: z.coerce.number().int().min(0).max(60_000).default(250),
  DB_STATEMENT_TIMEOUT_MS: z.coerce.number().int().min(100).max(600_000).default(10_000),
  DB_MIGRATION_LOCK_TIMEOUT_MS: z.coerce.number().int().min(100).max(600_000).default(10_000),
  DB_MIGRATION_WAIT_MS: z.coerce.number().int().min(1000).max(3_600_000).default(300_000),
  SINGLE_INSTANCE: booleanFromEnv.optional(),
  DB_CONNECT_TIMEOUT_MS: z.coerce.number().int().min(100).max(60_000).default(2_000),
  SLOW_STATEMENT_MS: z.coerce.number().int().min(0).max(600_000).default(200),
  N_PLUS_ONE: z.enum(['off', 'warn', 'error']).default('warn'),
  N_PLUS_ONE_THRESHOLD: z.coerce.number().int().min(1).max(1000).default(5),
  METRICS_TOKEN: z.string().min(16, { message: 'must be at least 16 characters' }).optional(),
  METRICS_PUBLIC: booleanFromEnv.optional(),
  GRAPHQL_INTROSPECTION: booleanFromEnv.optional(),
  GRAPHQL_MAX_DEPTH: z.coerce.number().int().min(1).max(100).default(8),
  GRAPHQL_MAX_COST: z.coerce.number().int().min(1).default(20_000),
  GRAPHQL_MAX_ALIASES: z.coerce.number().int().min(0).max(1000).default(15),
  GRAPHQL_MAX_TOKENS: z.coerce.number().int().min(10).default(2_000),
  GRAPHQL_MAX_DIRECTIVES: z.coerce.number().int().min(0).max(1000).default(20),
  GRAPHQL_BATCH_MAX: z.coerce.number().int().min(0).max(100).default(0),
  GRAPHQL_EXECUTOR: z.enum(['jit', 'graphql-js']).default('jit'),
  GRAPHQL_FEDERATION: booleanFromEnv.optional(),
  GRAPHQL_JIT_COMPILE_AFTER: z.coerce.number().int().min(1).max(1000).default(2),
  GRAPHQL_TRUSTED_DOCUMENTS: z.string().min(1).optional(),
  GRAPHQL_TRUSTED_DOCUMENTS_ADMIN_ANY: booleanFromEnv.optional(),
  PERSISTED_QUERIES_TTL_SECONDS: z.coerce.number().int().min(1).max(30 * 86_400).default(86_400),
  DB_POOL_MAX: z.coerce.number().int().min(1).max(1000).default(10),
  DEBUG_SQL: booleanFromEnv.optional(),
  REDIS_URL: z.string().regex(/^rediss?:\/\//, { message: 'must be a redis:// or rediss:// URL' }).optional(),
  CACHE_ENABLED: booleanFromEnv.default(true),
  CACHE_TTL_SECONDS: z.coerce.number().int().min(1).max(86_400).default(300),
  CACHE_TIMEOUT_MS: z.coerce.number().int().min(1).max(10_000).default(100),
  STRIPE_SECRET_KEY: z.string().min(1).optional(),
  STRIPE_WEBHOOK_SECRET: z.string().min(1).optional(),
  STRIPE_API_BASE: z.url({ message: 'must be a URL such as http://127.0.0.1:12111' }).optional(),
  STRIPE_TIMEOUT_MS: z.coerce.number().int().min(100).max(120_000).default(10_000),
  STRIPE_MAX_NETWORK_RETRIES: z.coerce.number().int().min(0).max(10).default(2),
  SUBSCRIPTIONS_PER_SOCKET: z.coerce.number().int().min(1).max(1000).default(20),
  WS_MAX_SOCKETS: z.coerce.number().int().min(1).max(1_000_000).default(10_000),
  WS_CONNECTION_INIT_TIMEOUT_MS: z.coerce.number().int().min(100).max(60_000).default(3000),
  WS_KEEPALIVE_MS: z.coerce.number().int().min(0).max(600_000).default(12_000),
  WS_MAX_BUFFERED_BYTES: z.coerce.number().int().min(1024).max(1024 * 1024 * 1024).default(1024 * 1024),
  RECONCILE_INTERVAL_SECONDS: z.coerce.number().int().min(0).max(86_400).default(300),
  RECONCILE_AFTER_SECONDS: z.coerce.number().int().min(0).max(30 * 86_400).default(600),
  RECONCILE_BATCH_SIZE: z.coerce.number().int().min(1).max(10_000).default(100),
  RECONCILE_MIN_CALL_INTERVAL_MS: z.coerce.number().int().min(0).max(60_000).default(50),
  PAYMENT_EXPIRE_AFTER_SECONDS: z.coerce.number().int().min(0).max(30 * 86_400).default(86_400),
  CACHE_NAMESPACE: z.string().regex(/^[\w.-]{1,64}$/, { message: 'must be 1-64 letters, digits, _ . -' }).default('paygraph'),
  SEED_DEMO: booleanFromEnv.optional(),
  RESPONSE_CACHE_ENABLED: booleanFromEnv.optional(),
  RESPONSE_CACHE_TTL_SECONDS: z.coerce.number().int().min(1).max(86_400).default(300),
  RESPONSE_CACHE_MAX_MB: z.coerce.number().int().min(1).max(65_536).default(64),
  RATE_LIMIT_ENABLED: booleanFromEnv.default(true),
  RATE_LIMIT_CAPACITY: z.coerce.number().int().min(1).default(20_000),
  RATE_LIMIT_RESTORE_RATE: z.coerce.number().positive().default(2_000),
  RATE_LIMIT_ADMIN_CAPACITY: z.coerce.number().int().min(1).default(100_000),
  RATE_LIMIT_ADMIN_RESTORE_RATE: z.coerce.number().positive().default(10_000),
  RATE_LIMIT_ANONYMOUS_CAPACITY: z.coerce.number().int().min(1).default(1_000),
  RATE_LIMIT_ANONYMOUS_RESTORE_RATE: z.coerce.number().positive().default(100),
  RATE_LIMIT_MUTATION_COST: z.coerce.number().int().min(0).default(10),
  RATE_LIMIT_CACHED_COST: z.coerce.number().int().min(0).default(1),
  RATE_LIMIT_WS_CONNECTIONS_PER_MINUTE: z.coerce.number().int().min(1).default(60),
  RATE_LIMIT_SUBSCRIPTIONS_PER_MINUTE: z.coerce.number().int().min(1).default(120),
  TRUSTED_PROXIES: z.coerce.number().int().min(0).max(10).default(0),
  PAYMENT_ATTEMPTS_PER_MINUTE: z.coerce.number().int().min(0).default(10),
  PAYMENT_ATTEMPTS_MAX_FAILURES: z.coerce.number().int().min(0).default(5),
  PAYMENT_ATTEMPTS_FAILURE_WINDOW_SECONDS: z.coerce.number().int().min(1).max(30 * 86_400).default(3600),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

/** Every environment variable the server reads (checked against docker-compose.yml by a test). */
export const CONFIG_VARIABLES: readonly string[] = Object.keys(variables.shape);

/**
 * What the process is: the server, or one of the scripts. Each is refused only for what it uses (a
 * migration needs no JWT secret and no metrics token).
 */
export type EntryPoint = 'server' | 'migrate' | 'seed' | 'reconcile' | 'token';

const envSchema = (entry: EntryPoint) => variables.superRefine((env, ctx) => {
  const server = entry === 'server';
  if (env.NODE_ENV === 'production' && (server || entry === 'token') && (!env.JWT_SECRET || env.JWT_SECRET.length < 32)) {
    ctx.addIssue({
      code: 'custom',
      path: ['JWT_SECRET'],
      message: 'is required in production and must be at least 32 characters',
    });
  }
  if (env.NODE_ENV === 'production' && !env.DATABASE_URL) {
    ctx.addIssue({ code: 'custom', path: ['DATABASE_URL'], message: 'is required in production (the embedded PostgreSQL is for development)' });
  }
  if (env.NODE_ENV === 'production' && server && !env.REDIS_URL && env.SINGLE_INSTANCE !== true) {
    ctx.addIssue({
      code: 'custom',
      path: ['REDIS_URL'],
      message:
        'is required in production: without it revocation, cache invalidation and subscriptions stay inside each process, which several instances cannot share. Set SINGLE_INSTANCE=true to declare that this is the only instance (a second one is then refused at start)',
    });
  }
  if (env.OIDC_ISSUER && !env.OIDC_AUDIENCE) {
    ctx.addIssue({ code: 'custom', path: ['OIDC_AUDIENCE'], message: "is required with OIDC_ISSUER: a token is accepted only if it was issued for this API (its 'aud')" });
  }
  if (!env.OIDC_ISSUER && (env.OIDC_AUDIENCE || env.OIDC_JWKS_URL)) {
    ctx.addIssue({ code: 'custom', path: ['OIDC_ISSUER'], message: 'is required with OIDC_AUDIENCE or OIDC_JWKS_URL' });
  }
  if (env.NODE_ENV === 'production' && server && !env.METRICS_TOKEN && env.METRICS_PUBLIC !== true) {
    ctx.addIssue({
      code: 'custom',
      path: ['METRICS_TOKEN'],
      message: 'is required in production (/metrics needs it), unless METRICS_PUBLIC=true serves /metrics to anyone who can reach it',
    });
  }
  if (env.NODE_ENV === 'production' && server && env.GRAPHQL_TRUSTED_DOCUMENTS_ADMIN_ANY === true) {
    ctx.addIssue({ code: 'custom', path: ['GRAPHQL_TRUSTED_DOCUMENTS_ADMIN_ANY'], message: 'is for development (Apollo Sandbox) and refused in production' });
  }
  if (server && env.RESPONSE_CACHE_ENABLED === true && !env.CACHE_ENABLED) {
    ctx.addIssue({ code: 'custom', path: ['RESPONSE_CACHE_ENABLED'], message: 'needs CACHE_ENABLED=true (a response is cached by the tags of its query-cache reads)' });
  }
  if (env.JWT_SECRET !== undefined && env.JWT_SECRET.length < 32) {
    ctx.addIssue({ code: 'custom', path: ['JWT_SECRET'], message: 'must be at least 32 characters' });
  }
});

export interface Config {
  readonly env: 'development' | 'test' | 'production';
  readonly isProduction: boolean;
  readonly host: string;
  readonly port: number;
  /** Unset: `npm start` runs an embedded PostgreSQL under `dataDir`. */
  readonly databaseUrl: string | undefined;
  readonly dataDir: string;
  /** Unset outside production: a development secret is generated and kept under `dataDir`. */
  readonly jwtSecret: string | undefined;
  /** An OpenID Connect provider whose tokens are accepted beside ours (src/modules/identity); null: none. */
  readonly oidc: {
    readonly issuer: string;
    readonly audience: string;
    /** Unset: the issuer's discovery document names it. */
    readonly jwksUrl: string | undefined;
    /** A first sign-in links by verified email (`link`), or else creates a USER (`create`). */
    readonly newUsers: 'link' | 'create';
    readonly clockSkewSeconds: number;
    /** A token naming a key not known makes a fetch of the JWKS at most this often. */
    readonly jwksMinIntervalMs: number;
  } | null;
  readonly jwtTtlSeconds: number;
  readonly dbPoolMax: number;
  /** After SIGTERM/SIGINT, exit non-zero if draining takes longer than this. */
  readonly shutdownTimeoutMs: number;
  /** After SIGTERM/SIGINT, keep serving (while /readyz says 503) this long before closing. */
  readonly shutdownGraceMs: number;
  /** Web origins whose pages may call the API from a browser (CORS_ORIGINS); empty: same origin only. */
  readonly corsOrigins: readonly string[];
  /** Streaming replicas of DATABASE_URL that query reads may go to (src/db/replicas); empty: none. */
  readonly replicas: {
    readonly urls: readonly string[];
    /** A replica further behind than this leaves the rotation until it catches up. */
    readonly maxLagMs: number;
    /** How often each replica's health and replay position are read. */
    readonly checkMs: number;
  };
  /**
   * `transaction`: DATABASE_URL is a pooler in transaction mode (PgBouncer): no startup parameters,
   * and the statement timeout set as the role's default in the database instead (see src/db/orm.ts).
   */
  readonly pooler: 'none' | 'transaction';
  readonly db: {
    /** Server-side statement_timeout of every connection. */
    readonly statementTimeoutMs: number;
    /** Bound on opening a connection and on waiting for one from the pool. */
    readonly connectTimeoutMs: number;
    /** A statement that takes this long or longer is logged (warn) with its shape and GraphQL path. */
    readonly slowStatementMs: number;
    /**
     * Migrations run with no statement timeout (an index on a large table takes what it takes) but
     * give up on a lock held this long by others (lock_timeout), rather than queueing traffic behind.
     */
    readonly migrationLockTimeoutMs: number;
    /** How long an instance waits for another instance's migrations (one instance migrates at a time). */
    readonly migrationWaitMs: number;
    /**
     * A direct connection (not the pooler) for migrations: behind a transaction-mode pooler those that
     * run outside a transaction (concurrent index builds, batched backfills) need one. Unset: DATABASE_URL.
     */
    readonly migrationUrl: string | undefined;
  };
  /**
   * Declared the only instance (SINGLE_INSTANCE=true): production may then run without Redis, and a
   * second instance on the same database is refused at start (src/db/single-instance.ts).
   */
  readonly singleInstance: boolean;
  /** Same SQL shape more than `threshold` times in one request: log (`warn`) or fail the request (`error`). */
  readonly nPlusOne: { readonly mode: 'off' | 'warn' | 'error'; readonly threshold: number };
  /**
   * GET /metrics: with `token`, it needs `Authorization: Bearer <token>`; without, it is open only when
   * `public` (METRICS_PUBLIC=true) or outside production (config refuses a production start otherwise).
   */
  readonly metrics: { readonly token: string | undefined; readonly public: boolean };
  readonly graphql: {
    /** Off in production unless GRAPHQL_INTROSPECTION=true. */
    readonly introspection: boolean;
    readonly maxDepth: number;
    /** Cost with each list's cost multiplied by its `first` (see src/core/security.ts). */
    readonly maxCost: number;
    readonly maxAliases: number;
    readonly maxTokens: number;
    readonly maxDirectives: number;
    /** Operations allowed in one batched (array) request; 0 turns batching off. */
    readonly batchMax: number;
    /** `jit` (graphql-jit, compiled per operation) or the reference `graphql-js` executor. */
    readonly executor: 'jit' | 'graphql-js';
    /** With `jit`: a document is compiled on its n-th run; graphql-js runs it until then. */
    readonly jitCompileAfter: number;
    /** A persisted-documents manifest: when set, only its operations run (see src/modules/documents). */
    readonly trustedDocuments: string | undefined;
    /** Development only: an ADMIN's token may run any operation despite `trustedDocuments`. */
    readonly trustedDocumentsAdminAny: boolean;
    /** How long an automatic persisted query's hash is remembered (in the shared store). */
    readonly persistedQueriesTtlSeconds: number;
    /** The schema is an Apollo Federation 2 subgraph (GRAPHQL_FEDERATION=true; src/modules/federation). */
    readonly federation: boolean;
  };
  /** Adds `extensions.sql` (statement count, time, texts) and `extensions.cache` to every response. */
  readonly debugSql: boolean;
  /** Unset: the query cache lives in process memory (one instance). */
  readonly redisUrl: string | undefined;
  /** Unset secret key: payment mutations answer PAYMENTS_NOT_CONFIGURED; everything else works. */
  readonly stripe: {
    readonly secretKey: string | undefined;
    readonly webhookSecret: string | undefined;
    /** Where the SDK sends requests (a Stripe API double in tests); unset: Stripe itself. */
    readonly apiBase: string | undefined;
    readonly timeoutMs: number;
    readonly maxNetworkRetries: number;
  };
  /** Subscriptions over graphql-ws (see src/modules/realtime). */
  readonly realtime: {
    readonly subscriptionsPerSocket: number;
    readonly maxSockets: number;
    readonly connectionInitTimeoutMs: number;
    /** 0: no pings. */
    readonly keepAliveMs: number;
    readonly maxBufferedBytes: number;
  };
  /** Settling payments whose webhook never came (see src/modules/reconciliation). */
  readonly reconcile: {
    /** Seconds between in-process runs; 0: no in-process job (`npm run reconcile` still works). */
    readonly intervalSeconds: number;
    /** A payment is asked about once unsettled (or its refund in flight) this long. */
    readonly afterSeconds: number;
    readonly batchSize: number;
    readonly minCallIntervalMs: number;
    /** A payment left PENDING or REQUIRES_ACTION this long is canceled (at Stripe first); 0: never. */
    readonly expireAfterSeconds: number;
  };
  readonly cache: {
    readonly enabled: boolean;
    readonly ttlSeconds: number;
    /** Bound on each cache store operation; past it the read goes to PostgreSQL. */
    readonly timeoutMs: number;
    /** Key prefix; instances that should share entries and invalidations share it. */
    readonly namespace: string;
  };
  readonly responseCache: {
    /** Whole responses of queries, invalidated exactly (src/modules/response-cache); default: CACHE_ENABLED. */
    readonly enabled: boolean;
    readonly ttlSeconds: number;
    /** Bound of the in-process store (no Redis): megabytes of response bodies. */
    readonly maxMemoryMb: number;
  };
  /** Cost budgets per client over time, and WebSocket budgets (src/modules/limits; docs/access.md). */
  readonly limits: LimitsSettings;
  /**
   * Proxies in front of the server that append to X-Forwarded-For (TRUSTED_PROXIES): the client's
   * address is the one the outermost of them saw. 0: the peer's address, X-Forwarded-For ignored.
   */
  readonly trustedProxies: number;
  /** Card-testing protection on createPayment (0 turns a rule off). */
  readonly paymentAttempts: {
    /** New payments a user may create per minute. */
    readonly perMinute: number;
    /** This many FAILED payments created within `failureWindowSeconds` refuse new ones until fewer are that recent. */
    readonly maxFailures: number;
    readonly failureWindowSeconds: number;
  };
  /** Seed demo data into an empty database at start; by default only in development. */
  readonly seedDemo: boolean;
  readonly logLevel: string;
}

/** A leaky bucket's size: it holds at most `capacity` points and refills at `restorePerSecond`. */
export interface BucketSize {
  readonly capacity: number;
  readonly restorePerSecond: number;
}

/** Cost budgets per client over time, and WebSocket budgets (src/modules/limits; docs/access.md). */
export interface LimitsSettings {
  /** RATE_LIMIT_ENABLED: cost budgets over time; off only when set to false. */
  readonly enabled: boolean;
  readonly user: BucketSize;
  readonly admin: BucketSize;
  /** Clients without a token, by address. */
  readonly anonymous: BucketSize;
  /** Added to a mutation's cost for each of its root fields (a write weighs more than its selection). */
  readonly mutationCost: number;
  /** What a response-cache hit costs: little, but not nothing. */
  readonly cachedCost: number;
  /** WebSocket connection attempts per client address. */
  readonly connections: BucketSize;
  /** Subscriptions started per viewer. */
  readonly subscriptions: BucketSize;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/**
 * Parses the environment once. A missing or invalid variable stops start-up with a message that
 * names it; nothing falls back to a built-in secret.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, entry: EntryPoint = 'server'): Config {
  // An empty variable (`FOO=`) means unset, as most shells and compose files intend.
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = envSchema(entry).safeParse(present);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.') || '(env)'}: ${i.message}`);
    throw new ConfigError(`Invalid configuration:\n${lines.join('\n')}`);
  }
  const e = parsed.data;
  return Object.freeze({
    env: e.NODE_ENV,
    isProduction: e.NODE_ENV === 'production',
    // Development prints an admin token and returns SQL texts: only this machine may reach it by default.
    host: e.HOST ?? (e.NODE_ENV === 'production' ? '0.0.0.0' : '127.0.0.1'),
    port: e.PORT,
    databaseUrl: e.DATABASE_URL,
    dataDir: e.DATA_DIR,
    jwtSecret: e.JWT_SECRET,
    oidc: e.OIDC_ISSUER
      ? Object.freeze({ issuer: e.OIDC_ISSUER, audience: e.OIDC_AUDIENCE!, jwksUrl: e.OIDC_JWKS_URL, newUsers: e.OIDC_NEW_USERS, clockSkewSeconds: e.OIDC_CLOCK_SKEW_SECONDS, jwksMinIntervalMs: e.OIDC_JWKS_MIN_INTERVAL_MS })
      : null,
    jwtTtlSeconds: e.JWT_TTL_SECONDS,
    dbPoolMax: e.DB_POOL_MAX,
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS,
    shutdownGraceMs: e.SHUTDOWN_GRACE_MS,
    pooler: e.DATABASE_POOLER,
    corsOrigins: Object.freeze(e.CORS_ORIGINS ?? []),
    replicas: Object.freeze({ urls: Object.freeze(e.DATABASE_REPLICA_URLS ?? []), maxLagMs: e.DATABASE_REPLICA_MAX_LAG_MS, checkMs: e.DATABASE_REPLICA_CHECK_MS }),
    db: Object.freeze({
      statementTimeoutMs: e.DB_STATEMENT_TIMEOUT_MS,
      connectTimeoutMs: e.DB_CONNECT_TIMEOUT_MS,
      slowStatementMs: e.SLOW_STATEMENT_MS,
      migrationLockTimeoutMs: e.DB_MIGRATION_LOCK_TIMEOUT_MS,
      migrationWaitMs: e.DB_MIGRATION_WAIT_MS,
      migrationUrl: e.DATABASE_MIGRATION_URL,
    }),
    singleInstance: e.SINGLE_INSTANCE ?? false,
    nPlusOne: Object.freeze({ mode: e.N_PLUS_ONE, threshold: e.N_PLUS_ONE_THRESHOLD }),
    metrics: Object.freeze({ token: e.METRICS_TOKEN, public: e.METRICS_PUBLIC ?? e.NODE_ENV !== 'production' }),
    graphql: Object.freeze({
      introspection: e.GRAPHQL_INTROSPECTION ?? e.NODE_ENV !== 'production',
      maxDepth: e.GRAPHQL_MAX_DEPTH,
      maxCost: e.GRAPHQL_MAX_COST,
      maxAliases: e.GRAPHQL_MAX_ALIASES,
      maxTokens: e.GRAPHQL_MAX_TOKENS,
      maxDirectives: e.GRAPHQL_MAX_DIRECTIVES,
      batchMax: e.GRAPHQL_BATCH_MAX,
      executor: e.GRAPHQL_EXECUTOR,
      jitCompileAfter: e.GRAPHQL_JIT_COMPILE_AFTER,
      trustedDocuments: e.GRAPHQL_TRUSTED_DOCUMENTS,
      trustedDocumentsAdminAny: e.GRAPHQL_TRUSTED_DOCUMENTS_ADMIN_ANY ?? false,
      persistedQueriesTtlSeconds: e.PERSISTED_QUERIES_TTL_SECONDS,
      federation: e.GRAPHQL_FEDERATION ?? false,
    }),
    debugSql: e.DEBUG_SQL ?? e.NODE_ENV === 'development',
    redisUrl: e.REDIS_URL,
    stripe: Object.freeze({
      secretKey: e.STRIPE_SECRET_KEY,
      webhookSecret: e.STRIPE_WEBHOOK_SECRET,
      apiBase: e.STRIPE_API_BASE,
      timeoutMs: e.STRIPE_TIMEOUT_MS,
      maxNetworkRetries: e.STRIPE_MAX_NETWORK_RETRIES,
    }),
    realtime: Object.freeze({
      subscriptionsPerSocket: e.SUBSCRIPTIONS_PER_SOCKET,
      maxSockets: e.WS_MAX_SOCKETS,
      connectionInitTimeoutMs: e.WS_CONNECTION_INIT_TIMEOUT_MS,
      keepAliveMs: e.WS_KEEPALIVE_MS,
      maxBufferedBytes: e.WS_MAX_BUFFERED_BYTES,
    }),
    reconcile: Object.freeze({
      intervalSeconds: e.RECONCILE_INTERVAL_SECONDS,
      afterSeconds: e.RECONCILE_AFTER_SECONDS,
      batchSize: e.RECONCILE_BATCH_SIZE,
      minCallIntervalMs: e.RECONCILE_MIN_CALL_INTERVAL_MS,
      expireAfterSeconds: e.PAYMENT_EXPIRE_AFTER_SECONDS,
    }),
    cache: Object.freeze({
      enabled: e.CACHE_ENABLED,
      ttlSeconds: e.CACHE_TTL_SECONDS,
      timeoutMs: e.CACHE_TIMEOUT_MS,
      namespace: e.CACHE_NAMESPACE,
    }),
    responseCache: Object.freeze({
      enabled: e.RESPONSE_CACHE_ENABLED ?? e.CACHE_ENABLED,
      ttlSeconds: e.RESPONSE_CACHE_TTL_SECONDS,
      maxMemoryMb: e.RESPONSE_CACHE_MAX_MB,
    }),
    limits: Object.freeze({
      enabled: e.RATE_LIMIT_ENABLED,
      user: Object.freeze({ capacity: e.RATE_LIMIT_CAPACITY, restorePerSecond: e.RATE_LIMIT_RESTORE_RATE }),
      admin: Object.freeze({ capacity: e.RATE_LIMIT_ADMIN_CAPACITY, restorePerSecond: e.RATE_LIMIT_ADMIN_RESTORE_RATE }),
      anonymous: Object.freeze({ capacity: e.RATE_LIMIT_ANONYMOUS_CAPACITY, restorePerSecond: e.RATE_LIMIT_ANONYMOUS_RESTORE_RATE }),
      mutationCost: e.RATE_LIMIT_MUTATION_COST,
      cachedCost: e.RATE_LIMIT_CACHED_COST,
      connections: Object.freeze({ capacity: e.RATE_LIMIT_WS_CONNECTIONS_PER_MINUTE, restorePerSecond: e.RATE_LIMIT_WS_CONNECTIONS_PER_MINUTE / 60 }),
      subscriptions: Object.freeze({ capacity: e.RATE_LIMIT_SUBSCRIPTIONS_PER_MINUTE, restorePerSecond: e.RATE_LIMIT_SUBSCRIPTIONS_PER_MINUTE / 60 }),
    }),
    trustedProxies: e.TRUSTED_PROXIES,
    paymentAttempts: Object.freeze({
      perMinute: e.PAYMENT_ATTEMPTS_PER_MINUTE,
      maxFailures: e.PAYMENT_ATTEMPTS_MAX_FAILURES,
      failureWindowSeconds: e.PAYMENT_ATTEMPTS_FAILURE_WINDOW_SECONDS,
    }),
    seedDemo: e.SEED_DEMO ?? e.NODE_ENV === 'development',
    logLevel: e.LOG_LEVEL,
  });
}

/** For entry points: the configuration, or the message naming what is wrong and exit code 1. */
export function loadConfigOrExit(entry: EntryPoint, env: NodeJS.ProcessEnv = process.env): Config {
  try {
    return loadConfig(env, entry);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      process.exit(1);
    }
    throw err;
  }
}
