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
  const { app, postgres, redis, replica, pgbouncer, front } = compose.services;
  const deploy = (file: string) => readFileSync(path.join(root, 'deploy', file), 'utf8');

  it('runs postgres 16 and redis 7 with healthchecks and named volumes', () => {
    expect(postgres.image).toMatch(/^postgres:16/);
    expect(redis.image).toMatch(/^redis:7/);
    for (const service of [postgres, redis]) {
      expect(service.healthcheck.test.join(' ')).toMatch(/pg_isready|redis-cli ping/);
      const [volume] = service.volumes[0].split(':');
      expect(Object.keys(compose.volumes)).toContain(volume);
    }
  });

  it('bounds Redis with an eviction policy that keeps the keys without a TTL (the read-your-writes marks)', () => {
    const args: string[] = redis.command;
    expect(args[args.indexOf('--maxmemory') + 1]).toMatch(/^\d+(mb|gb)$/);
    expect(args[args.indexOf('--maxmemory-policy') + 1]).toBe('volatile-lru');
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

  it('wires the app to the primary through PgBouncer, to the replica and to redis, by name, with their credentials', () => {
    const env = postgres.environment;
    const db = new URL(app.environment.DATABASE_URL);
    expect(db.hostname).toBe('pgbouncer');
    expect(db.port).toBe('6432');
    expect(app.environment.DATABASE_POOLER).toBe('transaction');
    // Migrations go around the pooler, to the primary itself (some run outside a transaction).
    const direct = new URL(app.environment.DATABASE_MIGRATION_URL);
    expect(direct.hostname).toBe('postgres');
    expect(direct.port).toBe('5432');
    const [replicaUrl, ...more] = String(app.environment.DATABASE_REPLICA_URLS).split(',');
    expect(more).toEqual([]);
    const rep = new URL(replicaUrl!);
    expect(rep.hostname).toBe('replica');
    for (const u of [db, rep, direct]) {
      expect(u.username).toBe(env.POSTGRES_USER);
      expect(u.password).toBe(env.POSTGRES_PASSWORD);
      expect(u.pathname).toBe(`/${env.POSTGRES_DB}`);
    }
    expect(new URL(app.environment.REDIS_URL).hostname).toBe('redis');
    expect(app.depends_on).toEqual({
      pgbouncer: { condition: 'service_healthy' },
      postgres: { condition: 'service_healthy' },
      replica: { condition: 'service_started' },
      redis: { condition: 'service_healthy' },
    });
    const config = loadConfig(Object.fromEntries(Object.entries(app.environment).map(([k, v]) => [k, expand(String(v))])));
    expect(config.pooler).toBe('transaction');
    expect(config.db.migrationUrl).toBe(direct.toString());
    expect(config.replicas.urls).toEqual([replicaUrl]);
  });

  it('runs PgBouncer in transaction mode in front of the primary, with the app\'s credentials', () => {
    const ini = deploy('pgbouncer/pgbouncer.ini');
    expect(ini).toMatch(/^pool_mode = transaction$/m);
    expect(ini).toMatch(/^paygraph = host=postgres port=5432 dbname=paygraph$/m);
    expect(ini).toMatch(/^listen_port = 6432$/m);
    expect(deploy('pgbouncer/userlist.txt').trim()).toBe(`"${postgres.environment.POSTGRES_USER}" "${postgres.environment.POSTGRES_PASSWORD}"`);
    expect(deploy('pgbouncer/Dockerfile')).toMatch(/apt-get install .*pgbouncer/);
    expect(pgbouncer.build).toBe('./deploy/pgbouncer');
    expect(pgbouncer.depends_on).toEqual({ postgres: { condition: 'service_healthy' } });
  });

  it('makes the replica a streaming standby of postgres, which allows replication connections', () => {
    const start = deploy('replica/start.sh');
    expect(replica.image).toBe(postgres.image);
    expect(replica.entrypoint).toEqual(['/bin/sh', '/deploy/replica/start.sh']);
    expect(start).toMatch(/pg_basebackup -h postgres -U "\$PRIMARY_USER" -D "\$PGDATA" -R -X stream/);
    expect(start).toMatch(/^exec postgres -c hot_standby=on$/m);
    expect(replica.environment).toMatchObject({ PRIMARY_USER: postgres.environment.POSTGRES_USER, PGPASSWORD: postgres.environment.POSTGRES_PASSWORD });
    expect(replica.volumes[0]).toBe('replica-data:/var/lib/postgresql/data');
    expect(postgres.volumes).toContain('./deploy/postgres/10-replication.sh:/docker-entrypoint-initdb.d/10-replication.sh:ro');
    expect(deploy('postgres/10-replication.sh')).toContain('host replication all all scram-sha-256');
  });

  it('publishes one port on the front, which spreads requests (and WebSockets) over every app container', () => {
    expect(app.ports).toBeUndefined();
    expect(app.expose).toEqual([app.environment.PORT]);
    expect(front.ports).toEqual([`${app.environment.PORT}:${app.environment.PORT}`]);
    const nginx = deploy('nginx.conf');
    expect(nginx).toMatch(new RegExp(`set \\$app http://app:${app.environment.PORT};`));
    expect(nginx).toMatch(/proxy_pass \$app;/);
    expect(nginx).toMatch(/resolver 127\.0\.0\.11/);
    expect(nginx).toMatch(/proxy_set_header Upgrade \$http_upgrade;/);
    expect(front.volumes).toContain('./deploy/nginx.conf:/etc/nginx/conf.d/default.conf:ro');
    expect(app.healthcheck.test.join(' ')).toContain(`127.0.0.1:${app.environment.PORT}/readyz`);
    expect(composeText).toContain('--scale app=3');
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
    expect(dockerfile).toMatch(/^FROM node:26[\w.-]* AS build$/m);
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
