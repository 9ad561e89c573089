import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { CONFIG_VARIABLES, loadConfig } from '../../src/config.js';

// No Docker engine runs in CI, so docker-compose.yml and the Dockerfile are checked by reading them.
const root = path.resolve(import.meta.dirname, '../..');
const composeText = readFileSync(path.join(root, 'docker-compose.yml'), 'utf8');
const compose = parse(composeText);
const dockerfile = readFileSync(path.join(root, 'Dockerfile'), 'utf8');

/** `${NAME:?message}` / `${NAME:-default}` as compose would expand them, with test values for the required ones. */
function expand(value: string): string {
  return value.replace(/\$\{(\w+)(?::([?-])([^}]*))?\}/g, (_m, name: string, kind: string, rest: string) => {
    if (name === 'JWT_SECRET') return 'x'.repeat(48);
    if (name === 'METRICS_TOKEN') return 'm'.repeat(24);
    return kind === '-' ? rest : '';
  });
}

describe('docker-compose.yml', () => {
  const { app, postgres, redis } = compose.services;

  it('runs postgres 16 and redis 7 with healthchecks and named volumes', () => {
    expect(postgres.image).toMatch(/^postgres:16/);
    expect(redis.image).toMatch(/^redis:7/);
    for (const service of [postgres, redis]) {
      expect(service.healthcheck.test.join(' ')).toMatch(/pg_isready|redis-cli ping/);
      const [volume] = service.volumes[0].split(':');
      expect(Object.keys(compose.volumes)).toContain(volume);
    }
  });

  it('gives the app only variables the config knows, and a configuration that loads', () => {
    const env: Record<string, string> = Object.fromEntries(Object.entries(app.environment).map(([k, v]) => [k, expand(String(v))]));
    for (const name of Object.keys(env)) expect(CONFIG_VARIABLES).toContain(name);
    const config = loadConfig(env);
    expect(config).toMatchObject({ isProduction: true, port: 4000, redisUrl: 'redis://redis:6379' });
    // JWT_SECRET and METRICS_TOKEN must come from the operator: compose refuses to start without them.
    expect(app.environment.JWT_SECRET).toMatch(/^\$\{JWT_SECRET:\?/);
    expect(app.environment.METRICS_TOKEN).toMatch(/^\$\{METRICS_TOKEN:\?/);
    expect(config.metrics).toEqual({ token: 'm'.repeat(24), public: false });
    expect(config.host).toBe('0.0.0.0');
  });

  it('wires the app to the postgres and redis services by name, with their credentials', () => {
    const db = new URL(app.environment.DATABASE_URL);
    expect(db.hostname).toBe('postgres');
    expect(db.username).toBe(postgres.environment.POSTGRES_USER);
    expect(db.password).toBe(postgres.environment.POSTGRES_PASSWORD);
    expect(db.pathname).toBe(`/${postgres.environment.POSTGRES_DB}`);
    expect(new URL(app.environment.REDIS_URL).hostname).toBe('redis');
    expect(app.depends_on).toEqual({ postgres: { condition: 'service_healthy' }, redis: { condition: 'service_healthy' } });
  });

  it("publishes the app's port and checks it on /readyz", () => {
    expect(app.ports).toContain(`${app.environment.PORT}:${app.environment.PORT}`);
    expect(app.healthcheck.test.join(' ')).toContain(`127.0.0.1:${app.environment.PORT}/readyz`);
  });

  it('documents DATABASE_URLs that reach the published PostgreSQL', () => {
    const env = postgres.environment;
    const url = `postgresql://${env.POSTGRES_USER}:${env.POSTGRES_PASSWORD}@127.0.0.1:5432/${env.POSTGRES_DB}`;
    expect(postgres.ports).toContain('127.0.0.1:5432:5432');
    expect(composeText).toContain(url);
    expect(loadConfig({ DATABASE_URL: url }).databaseUrl).toBe(url);
  });
});

describe('Dockerfile', () => {
  it('builds in one stage and runs in another with production dependencies only, as a non-root user, checked on /readyz', () => {
    expect(dockerfile.match(/^FROM /gm)).toHaveLength(2);
    expect(dockerfile).toMatch(/^FROM node:20[\w.-]* AS build$/m);
    expect(dockerfile).toMatch(/^RUN npm ci --omit=dev/m);
    expect(dockerfile).toMatch(/^COPY --from=build \/app\/dist \.\/dist$/m);
    expect(dockerfile).toMatch(/^USER node$/m);
    expect(dockerfile).toMatch(/^HEALTHCHECK [\s\S]*\/readyz/m);
    // The same command as `npm run start:prod`, which the benchmark measures.
    const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
    const cmd = JSON.parse(/^CMD (\[.*\])$/m.exec(dockerfile)![1]!) as string[];
    expect(pkg.scripts['start:prod']).toBe(`NODE_ENV=production ${cmd.join(' ')}`);
    expect(cmd.at(-1)).toBe('dist/main.js');
  });

  it('runs what `npm run build` produces', () => {
    const build = JSON.parse(readFileSync(path.join(root, 'tsconfig.build.json'), 'utf8'));
    expect(build.compilerOptions).toMatchObject({ rootDir: 'src', outDir: 'dist' });
    const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
    expect(pkg.scripts.build).toBe('tsc -p tsconfig.build.json');
    // Nothing the compiled server imports at start may be a development dependency.
    for (const dev of ['tsx', 'vitest', 'typescript']) expect(Object.keys(pkg.dependencies)).not.toContain(dev);
  });
});
