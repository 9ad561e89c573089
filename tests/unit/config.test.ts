import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';

describe('loadConfig', () => {
  it('gives development defaults with nothing set', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({ env: 'development', port: 4000, databaseUrl: undefined, dataDir: '.data', debugSql: true, dbPoolMax: 10 });
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('refuses production without a JWT_SECRET, naming it', () => {
    expect(() => loadConfig({ NODE_ENV: 'production' })).toThrow(ConfigError);
    expect(() => loadConfig({ NODE_ENV: 'production' })).toThrow(/JWT_SECRET/);
    expect(() => loadConfig({ NODE_ENV: 'production', JWT_SECRET: 'short' })).toThrow(/JWT_SECRET: .*32/);
  });

  it('refuses production without DATABASE_URL: the embedded PostgreSQL is for development', () => {
    expect(() => loadConfig({ NODE_ENV: 'production', JWT_SECRET: 'x'.repeat(32) })).toThrow(/DATABASE_URL: is required in production/);
  });

  it('accepts production with a long secret, and keeps SQL debug off there', () => {
    const c = loadConfig({ NODE_ENV: 'production', JWT_SECRET: 'x'.repeat(32), DATABASE_URL: 'postgresql://db/app', METRICS_TOKEN: 't'.repeat(16), REDIS_URL: 'redis://cache:6379' });
    expect(c.isProduction).toBe(true);
    expect(c.debugSql).toBe(false);
  });

  it('refuses production with /metrics open unless METRICS_PUBLIC=true says so, naming METRICS_TOKEN', () => {
    const production = { NODE_ENV: 'production', JWT_SECRET: 'x'.repeat(32), DATABASE_URL: 'postgresql://db/app', REDIS_URL: 'redis://cache:6379' };
    expect(() => loadConfig(production)).toThrow(/METRICS_TOKEN: is required in production .*METRICS_PUBLIC=true/);
    expect(() => loadConfig({ ...production, METRICS_PUBLIC: 'false' })).toThrow(/METRICS_TOKEN:/);
    expect(loadConfig({ ...production, METRICS_PUBLIC: 'true' }).metrics).toEqual({ token: undefined, public: true });
    expect(loadConfig({ ...production, METRICS_TOKEN: 't'.repeat(16) }).metrics).toEqual({ token: 't'.repeat(16), public: false });
    expect(loadConfig({}).metrics).toEqual({ token: undefined, public: true });
  });

  it('turns the response cache on with the query cache, and refuses it without one, naming it', () => {
    expect(loadConfig({}).responseCache).toEqual({ enabled: true, ttlSeconds: 300, maxMemoryMb: 64 });
    expect(loadConfig({ CACHE_ENABLED: 'false' }).responseCache.enabled).toBe(false);
    expect(loadConfig({ RESPONSE_CACHE_ENABLED: 'false' }).responseCache.enabled).toBe(false);
    expect(() => loadConfig({ CACHE_ENABLED: 'false', RESPONSE_CACHE_ENABLED: 'true' })).toThrow(/RESPONSE_CACHE_ENABLED: needs CACHE_ENABLED=true/);
    expect(loadConfig({ RESPONSE_CACHE_TTL_SECONDS: '86400', RESPONSE_CACHE_MAX_MB: '1' }).responseCache).toMatchObject({ ttlSeconds: 86400, maxMemoryMb: 1 });
    expect(() => loadConfig({ RESPONSE_CACHE_TTL_SECONDS: '86401' })).toThrow(/RESPONSE_CACHE_TTL_SECONDS/);
  });

  it('listens on loopback in development and on every interface in production, unless HOST says otherwise', () => {
    expect(loadConfig({}).host).toBe('127.0.0.1');
    expect(loadConfig({ NODE_ENV: 'test' }).host).toBe('127.0.0.1');
    expect(loadConfig({ HOST: '0.0.0.0' }).host).toBe('0.0.0.0');
    const production = { NODE_ENV: 'production', JWT_SECRET: 'x'.repeat(32), DATABASE_URL: 'postgresql://db/app', METRICS_PUBLIC: 'true', SINGLE_INSTANCE: 'true' };
    expect(loadConfig(production).host).toBe('0.0.0.0');
    expect(loadConfig({ ...production, HOST: '10.1.2.3' }).host).toBe('10.1.2.3');
  });

  it.each([
    ['PORT', { PORT: 'eighty' }],
    ['PORT', { PORT: '70000' }],
    ['DATABASE_URL', { DATABASE_URL: 'mysql://localhost/db' }],
    ['DB_POOL_MAX', { DB_POOL_MAX: '0' }],
    ['DEBUG_SQL', { DEBUG_SQL: 'yes please' }],
    ['NODE_ENV', { NODE_ENV: 'staging' }],
  ])('names %s when it is invalid', (name, env) => {
    expect(() => loadConfig(env)).toThrow(new RegExp(`${name}:`));
  });

  it('refuses a production server without Redis unless SINGLE_INSTANCE=true declares it the only one, naming REDIS_URL', () => {
    const production = { NODE_ENV: 'production', JWT_SECRET: 'x'.repeat(32), DATABASE_URL: 'postgresql://db/app', METRICS_PUBLIC: 'true' };
    expect(() => loadConfig(production)).toThrow(/REDIS_URL: is required in production: .*SINGLE_INSTANCE=true/);
    expect(() => loadConfig({ ...production, SINGLE_INSTANCE: 'false' })).toThrow(/REDIS_URL:/);
    expect(loadConfig({ ...production, SINGLE_INSTANCE: 'true' }).singleInstance).toBe(true);
    expect(loadConfig({ ...production, REDIS_URL: 'redis://cache:6379' })).toMatchObject({ singleInstance: false, redisUrl: 'redis://cache:6379' });
    // Outside production one process is the usual case, and nothing is refused.
    expect(loadConfig({}).singleInstance).toBe(false);
  });

  it('checks each entry point for what it uses: a script needs no JWT secret, metrics token or Redis', () => {
    const database = { NODE_ENV: 'production', DATABASE_URL: 'postgresql://db/app' };
    // The server needs all of them...
    expect(() => loadConfig(database, 'server')).toThrow(/JWT_SECRET[\s\S]*REDIS_URL[\s\S]*METRICS_TOKEN/);
    // ...a migration, a seed and a reconciliation run need the database only...
    for (const entry of ['migrate', 'seed', 'reconcile'] as const) expect(loadConfig(database, entry).databaseUrl).toBe('postgresql://db/app');
    // ...a token needs the secret it signs with, and every script the database.
    expect(() => loadConfig(database, 'token')).toThrow(/JWT_SECRET: is required/);
    expect(loadConfig({ ...database, JWT_SECRET: 'x'.repeat(32) }, 'token').jwtSecret).toBe('x'.repeat(32));
    expect(() => loadConfig({ NODE_ENV: 'production' }, 'migrate')).toThrow(/DATABASE_URL: is required/);
    // A value that is there must still be valid, whoever reads it.
    expect(() => loadConfig({ ...database, DB_STATEMENT_TIMEOUT_MS: 'soon' }, 'migrate')).toThrow(/DB_STATEMENT_TIMEOUT_MS:/);
  });

  it('gives migrations a lock timeout and a wait of their own', () => {
    expect(loadConfig({}).db).toMatchObject({ statementTimeoutMs: 10_000, migrationLockTimeoutMs: 10_000, migrationWaitMs: 300_000 });
    expect(loadConfig({ DB_MIGRATION_LOCK_TIMEOUT_MS: '2500', DB_MIGRATION_WAIT_MS: '60000' }).db).toMatchObject({ migrationLockTimeoutMs: 2500, migrationWaitMs: 60_000 });
    expect(() => loadConfig({ DB_MIGRATION_LOCK_TIMEOUT_MS: '5' })).toThrow(/DB_MIGRATION_LOCK_TIMEOUT_MS:/);
  });

  it('bounds JWT_TTL_SECONDS at a day and PAYMENT_EXPIRE_AFTER_SECONDS at 30 days, naming them', () => {
    expect(loadConfig({ JWT_TTL_SECONDS: '86400' }).jwtTtlSeconds).toBe(86_400);
    expect(() => loadConfig({ JWT_TTL_SECONDS: '86401' })).toThrow(/JWT_TTL_SECONDS: must be at most 86400/);
    expect(loadConfig({}).reconcile.expireAfterSeconds).toBe(86_400);
    expect(loadConfig({ PAYMENT_EXPIRE_AFTER_SECONDS: '0' }).reconcile.expireAfterSeconds).toBe(0);
    expect(() => loadConfig({ PAYMENT_EXPIRE_AFTER_SECONDS: String(30 * 86_400 + 1) })).toThrow(/PAYMENT_EXPIRE_AFTER_SECONDS:/);
  });

  it('treats an empty variable as unset', () => {
    expect(loadConfig({ DATABASE_URL: '', PORT: '' })).toMatchObject({ databaseUrl: undefined, port: 4000 });
  });
});
