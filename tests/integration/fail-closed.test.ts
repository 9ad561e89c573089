import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Fastify from 'fastify';
import { FieldResolver, Resolver, Root, UseMiddleware } from 'type-graphql';
import { Registry } from 'prom-client';
import { createTestApp, type TestApp } from '../helpers/test-app.js';
import { NaivePaymentsResolver } from '../helpers/naive.resolver.js';
import { UserType } from '../../src/modules/user/user.types.js';
import type { UserRow } from '../../src/modules/user/user.repository.js';
import { TrackResolverPath } from '../../src/core/resolver-path.js';
import { registerMetricsRoute } from '../../src/core/metrics.js';

/** Tests only: a field that fails with an internal error whose text must never reach a client. */
@Resolver(() => UserType)
@UseMiddleware(TrackResolverPath)
class BrokenFieldResolver {
  @FieldResolver(() => String)
  broken(@Root() user: UserRow): string {
    throw new Error(`internal detail: relation "secret_table" for user ${user.id}`);
  }
}

describe('a production server fails closed', () => {
  let t: TestApp;
  const logLines: string[] = [];
  beforeAll(async () => {
    t = await createTestApp({
      seed: { users: 6, paymentsPerUser: 2 },
      env: { NODE_ENV: 'production', SINGLE_INSTANCE: 'true', DEBUG_SQL: 'false', METRICS_TOKEN: 'fail-closed-metrics-token', LOG_LEVEL: 'warn' },
      appOptions: { extraResolvers: [NaivePaymentsResolver, BrokenFieldResolver], logStream: { write: (line) => void logLines.push(line) } },
    });
  });
  afterAll(async () => t?.close());

  it('masks an internal error but keeps its path and locations (the client\'s own query)', async () => {
    const r = await t.gql('query {\n  me {\n    id\n    broken\n  }\n}', { token: await t.userToken(2) });
    expect(r.status).toBe(200);
    expect(r.body.data).toEqual({ me: null });
    expect(r.body.errors).toEqual([
      {
        message: 'Internal server error',
        locations: [{ line: 4, column: 5 }],
        path: ['me', 'broken'],
        extensions: { code: 'INTERNAL_SERVER_ERROR', requestId: expect.any(String) },
      },
    ]);
    expect(JSON.stringify(r.body)).not.toMatch(/secret_table|internal detail/);
  });

  it('fails an N+1 with N_PLUS_ONE_DETECTED and no SQL in the response; the log keeps the shape and path', async () => {
    logLines.length = 0;
    const r = await t.gql('{ users(first: 6) { nodes { id naivePayments { id } } } }', { token: await t.adminToken() });
    expect(r.status).toBe(500);
    expect(r.body.errors).toEqual([{ message: 'N+1 query detected', extensions: { code: 'N_PLUS_ONE_DETECTED', requestId: expect.any(String) } }]);
    expect(JSON.stringify(r.body)).not.toMatch(/select|payments"|from/i);
    const warning = logLines.map((l) => JSON.parse(l)).find((l) => l.msg === 'N+1 query detected');
    expect(warning.repeated[0]).toMatchObject({ shape: expect.stringMatching(/^select .* from "payments"/), count: 6, path: 'users.nodes.*.naivePayments' });
  });
});

describe('/metrics access', () => {
  async function serve(access: { token: string | undefined; public: boolean }) {
    const fastify = Fastify();
    const registry = new Registry();
    registerMetricsRoute(fastify, registry, access);
    return (authorization?: string) =>
      fastify.inject({ method: 'GET', url: '/metrics', headers: authorization === undefined ? {} : { authorization } }).then((r) => r.statusCode);
  }

  it('with a token: only the exact bearer token passes (not a prefix, not another of the same length)', async () => {
    const get = await serve({ token: 'abcdefghijklmnopqrstuvwx', public: false });
    expect(await get()).toBe(401);
    expect(await get('Bearer abcdefghijklmnopqrstuvwy')).toBe(401);
    expect(await get('Bearer abcdefghijklmnop')).toBe(401);
    expect(await get('Bearer abcdefghijklmnopqrstuvwxyz')).toBe(401);
    expect(await get('bearer abcdefghijklmnopqrstuvwx')).toBe(401);
    expect(await get('Bearer abcdefghijklmnopqrstuvwx')).toBe(200);
  });

  it('without a token: refused unless declared public', async () => {
    expect(await (await serve({ token: undefined, public: false }))()).toBe(403);
    expect(await (await serve({ token: undefined, public: true }))()).toBe(200);
  });
});
