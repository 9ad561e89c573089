import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, type App } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { freePort, startEmbeddedPostgres, type EmbeddedDatabase } from '../../src/db/embedded.js';
import { seedDemoData } from '../../src/db/seeders/demo.seeder.js';
import { secretKey, signToken } from '../../src/modules/auth/auth.js';
import { Role } from '../../src/modules/user/user.entity.js';
import { TEST_JWT_SECRET } from '../helpers/test-app.js';

/**
 * PostgreSQL goes away under a running app (a server this test starts and stops itself): requests
 * fail fast with SERVICE_UNAVAILABLE (HTTP 503), /readyz says 503, and when the server is back the
 * same process serves again without a restart.
 */
let dataDir: string;
let port: number;
let pg: EmbeddedDatabase | undefined;
let app: App | undefined;
let token: string;

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'paygraph-outage-'));
  port = await freePort();
  pg = await startEmbeddedPostgres({ dataDir, port });
  app = await createApp(
    loadConfig({
      NODE_ENV: 'production',
      SINGLE_INSTANCE: 'true',
      METRICS_PUBLIC: 'true',
      DATABASE_URL: pg.url,
      JWT_SECRET: TEST_JWT_SECRET,
      LOG_LEVEL: 'silent',
      CACHE_ENABLED: 'false',
      DB_CONNECT_TIMEOUT_MS: '1000',
    }),
  );
  await seedDemoData(app.orm.em.fork(), { users: 3, paymentsPerUser: 2 });
  token = await signToken(secretKey(TEST_JWT_SECRET), { id: 1, role: Role.ADMIN }, 600);
}, 180_000);

afterAll(async () => {
  await app?.close();
  await pg?.stop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

async function query() {
  const res = await app!.fastify.inject({
    method: 'POST',
    url: '/graphql',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    payload: JSON.stringify({ query: '{ users(first: 3) { nodes { email paymentCount } } }' }),
  });
  return { status: res.statusCode, body: res.json() as { data?: any; errors?: { message: string; extensions?: { code?: string } }[] }, text: res.body };
}
const ready = async () => (await app!.fastify.inject({ method: 'GET', url: '/readyz' })).statusCode;

describe('a PostgreSQL outage', () => {
  it('fails fast with SERVICE_UNAVAILABLE while the database is down, and recovers in the same process', { timeout: 120_000 }, async () => {
    expect((await query()).body.data.users.nodes).toHaveLength(3);
    expect(await ready()).toBe(200);

    await pg!.stop();
    pg = undefined;
    for (let i = 0; i < 3; i++) {
      const started = Date.now();
      const r = await query();
      expect(Date.now() - started).toBeLessThan(5000);
      expect(r.status).toBe(503);
      expect(r.body.errors?.map((e) => e.extensions?.code)).toEqual(['SERVICE_UNAVAILABLE']);
      expect(r.text).not.toMatch(/ECONNREFUSED|select|Knex|stack/i);
    }
    expect(await ready()).toBe(503);

    pg = await startEmbeddedPostgres({ dataDir, port });
    let recovered = false;
    for (let i = 0; i < 60 && !recovered; i++) {
      const r = await query();
      recovered = r.status === 200 && r.body.data?.users?.nodes?.length === 3;
      if (!recovered) await new Promise((resolve) => setTimeout(resolve, 250));
    }
    expect(recovered).toBe(true);
    expect(await ready()).toBe(200);
  });
});
