import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { startEmbeddedPostgres } from '../../src/db/embedded.js';
import { hasRedisServer, RedisProcess } from './redis-server.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** A PostgreSQL server URL (no database): each test file creates and drops its own database. */
    pgServerUrl: string;
    /** A Redis to test against, or '' when none can be had (never in CI). */
    redisUrl: string;
  }
}

/**
 * TEST_DATABASE_URL names a server to use; without it, a throw-away embedded PostgreSQL is started
 * for the run, so `npm test` works on a machine with nothing installed. Likewise TEST_REDIS_URL, else
 * a private `redis-server` when one is installed; CI must have Redis, so there its absence fails.
 */
export default async function setup(project: TestProject) {
  const teardown: (() => Promise<void>)[] = [];

  const configuredPg = process.env.TEST_DATABASE_URL;
  if (configuredPg) {
    project.provide('pgServerUrl', configuredPg);
  } else {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'paygraph-test-'));
    const db = await startEmbeddedPostgres({ dataDir, ephemeral: true });
    project.provide('pgServerUrl', db.serverUrl);
    teardown.push(async () => {
      await db.stop();
      await rm(dataDir, { recursive: true, force: true });
    });
  }

  const configuredRedis = process.env.TEST_REDIS_URL;
  if (configuredRedis) {
    project.provide('redisUrl', configuredRedis);
  } else if (hasRedisServer()) {
    const redis = await RedisProcess.start();
    project.provide('redisUrl', redis.url);
    teardown.push(() => redis.stop());
  } else if (process.env.CI) {
    throw new Error('CI needs Redis: set TEST_REDIS_URL (or install redis-server)');
  } else {
    console.warn('No Redis (TEST_REDIS_URL unset, no redis-server): the Redis variants of the cache tests are skipped.');
    project.provide('redisUrl', '');
  }

  return async () => {
    for (const step of teardown.reverse()) await step();
  };
}
