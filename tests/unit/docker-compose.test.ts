import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadConfig } from '../../src/config.js';

// No Docker engine runs in CI, so the compose file is checked by reading it.
const compose = parse(readFileSync(path.resolve(import.meta.dirname, '../../docker-compose.yml'), 'utf8'));

describe('docker-compose.yml', () => {
  it('runs postgres 16 and redis 7 with healthchecks and named volumes', () => {
    const { postgres, redis } = compose.services;
    expect(postgres.image).toMatch(/^postgres:16/);
    expect(redis.image).toMatch(/^redis:7/);
    for (const service of [postgres, redis]) {
      expect(service.healthcheck.test.join(' ')).toMatch(/pg_isready|redis-cli ping/);
      const [volume] = service.volumes[0].split(':');
      expect(Object.keys(compose.volumes)).toContain(volume);
    }
  });

  it('exposes a PostgreSQL that the documented DATABASE_URL reaches', () => {
    const env = compose.services.postgres.environment;
    const url = `postgresql://${env.POSTGRES_USER}:${env.POSTGRES_PASSWORD}@127.0.0.1:5432/${env.POSTGRES_DB}`;
    expect(compose.services.postgres.ports).toContain('127.0.0.1:5432:5432');
    expect(loadConfig({ DATABASE_URL: url }).databaseUrl).toBe(url);
    expect(readFileSync(path.resolve(import.meta.dirname, '../../docker-compose.yml'), 'utf8')).toContain(url);
  });
});
