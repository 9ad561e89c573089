import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { postGraphql, startServer, type ServerProcess } from '../helpers/server-process.js';
import { TEST_JWT_SECRET } from '../helpers/test-app.js';
import { CacheService } from '../../src/core/cache/index.js';
import { secretKey, signToken } from '../../src/modules/auth/auth.js';
import { Role } from '../../src/modules/user/user.entity.js';

/**
 * A Redis outlives the databases it caches for (a recreated compose volume, a reset demo). Ids in a
 * new database mean other rows, so a server that seeds a fresh database must not answer from what
 * the shared store holds of the previous one.
 */
const redisUrl = inject('redisUrl');
const namespace = `fresh${randomBytes(4).toString('hex')}`;
const databases: TestDatabase[] = [];
let server: ServerProcess | undefined;

afterAll(async () => {
  await server?.stop('SIGKILL');
  for (const db of databases) await db.drop();
  if (redisUrl) {
    const cache = CacheService.create({ redisUrl, namespace, defaultTtlSeconds: 60, timeoutMs: 1000 });
    await cache.ready();
    await cache.clear();
    await cache.close();
  }
});

describe.skipIf(!redisUrl)('a server seeding a fresh database with a shared Redis', () => {
  it('does not serve entries cached from the previous database', { timeout: 120_000 }, async () => {
    const token = await signToken(secretKey(TEST_JWT_SECRET), { id: 1, role: Role.ADMIN }, 600);
    const start = async () => {
      const db = await createTestDatabase();
      databases.push(db);
      server = await startServer({
        ...process.env,
        NODE_ENV: 'production',
        METRICS_PUBLIC: 'true',
        DATABASE_URL: db.url,
        JWT_SECRET: TEST_JWT_SECRET,
        REDIS_URL: redisUrl,
        CACHE_ENABLED: 'true',
        CACHE_NAMESPACE: namespace,
        DEBUG_SQL: 'true',
        SEED_DEMO: 'true',
        HOST: '127.0.0.1',
        PORT: '0',
        LOG_LEVEL: 'warn',
        SHUTDOWN_GRACE_MS: '0',
      });
      return { db, url: server.url };
    };
    const query = '{ user(id: 2) { name } }';

    const first = await start();
    await first.db.query(`update users set name = 'only in the first database' where id = 2`);
    expect((await postGraphql(first.url, query, token)).body.data.user.name).toBe('only in the first database');
    const warm = await postGraphql(first.url, query, token);
    expect(warm.body.data.user.name).toBe('only in the first database');
    expect(warm.body.extensions.sql.statements).toBe(0); // served from Redis
    expect(await server!.stop()).toBe(0);

    const second = await start();
    const fresh = await postGraphql(second.url, query, token);
    expect(fresh.body.data.user.name).not.toBe('only in the first database');
    expect(fresh.body.data.user.name).toBe((await second.db.query<{ name: string }>('select name from users where id = 2'))[0]!.name);
    // The viewer's row and user 2's, both from the new database (nothing served from the old one's cache).
    expect(fresh.body.extensions.sql.statements).toBe(2);
    expect(await server!.stop()).toBe(0);
  });
});
