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
    const c = loadConfig({ NODE_ENV: 'production', JWT_SECRET: 'x'.repeat(32), DATABASE_URL: 'postgresql://db/app', METRICS_TOKEN: 't'.repeat(16) });
    expect(c.isProduction).toBe(true);
    expect(c.debugSql).toBe(false);
  });

  it('refuses production with /metrics open unless METRICS_PUBLIC=true says so, naming METRICS_TOKEN', () => {
    const production = { NODE_ENV: 'production', JWT_SECRET: 'x'.repeat(32), DATABASE_URL: 'postgresql://db/app' };
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
    const production = { NODE_ENV: 'production', JWT_SECRET: 'x'.repeat(32), DATABASE_URL: 'postgresql://db/app', METRICS_PUBLIC: 'true' };
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

  it('treats an empty variable as unset', () => {
    expect(loadConfig({ DATABASE_URL: '', PORT: '' })).toMatchObject({ databaseUrl: undefined, port: 4000 });
  });
});
