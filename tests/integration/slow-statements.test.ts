import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Ctx, FieldResolver, Int, Resolver, Root, UseMiddleware, Arg } from 'type-graphql';
import { createTestApp, type TestApp } from '../helpers/test-app.js';
import { UserType } from '../../src/modules/user/user.types.js';
import type { UserRow } from '../../src/modules/user/user.repository.js';
import type { Context } from '../../src/context.js';
import { TrackResolverPath } from '../../src/core/resolver-path.js';
import { queryRows } from '../../src/core/sql.js';

/** Tests only: a field whose statement takes as long as asked (`pg_sleep`). */
@Resolver(() => UserType)
@UseMiddleware(TrackResolverPath)
class SleepyResolver {
  @FieldResolver(() => Int)
  async sleepy(@Root() user: UserRow, @Arg('ms', () => Int) ms: number, @Ctx() ctx: Context): Promise<number> {
    await queryRows(ctx.em, 'select pg_sleep(?)', [ms / 1000]);
    return user.id;
  }
}

describe('slow statements', () => {
  let t: TestApp;
  const lines: Record<string, any>[] = [];
  beforeAll(async () => {
    t = await createTestApp({
      seed: { users: 2, paymentsPerUser: 0 },
      env: { SLOW_STATEMENT_MS: '150', LOG_LEVEL: 'warn' },
      appOptions: { extraResolvers: [SleepyResolver], logStream: { write: (line) => void lines.push(JSON.parse(line)) } },
    });
  });
  afterAll(async () => t?.close());

  const slowLines = () => lines.filter((l) => l.msg === 'slow SQL statement');

  it('logs one warn line for a statement at or over SLOW_STATEMENT_MS, with shape, duration, target, GraphQL path and request id', async () => {
    const token = await t.userToken(2);
    await t.gql('{ __typename }', { token });
    lines.length = 0;
    const fast = await t.gql('{ me { sleepy(ms: 10) } }', { token, headers: { 'x-request-id': 'fast-1' } });
    expect(fast.body.data).toEqual({ me: { sleepy: 2 } });
    expect(slowLines()).toEqual([]);

    const slow = await t.gql('{ me { sleepy(ms: 200) } }', { token, headers: { 'x-request-id': 'slow-1' } });
    expect(slow.body.data).toEqual({ me: { sleepy: 2 } });
    expect(slowLines()).toHaveLength(1);
    // The request's own id (what the response named), whatever the client called it.
    expect(slowLines()[0]).toMatchObject({ level: 40, shape: 'select pg_sleep(?)', target: 'primary', path: 'me.sleepy', requestId: slow.headers['x-request-id'] });
    expect(slowLines()[0]!.durationMs).toBeGreaterThanOrEqual(150);
  });

  it('keeps a histogram of statement durations by shape in /metrics', async () => {
    const text = (await t.app.fastify.inject({ method: 'GET', url: '/metrics' })).body;
    expect(text).toMatch(/^db_statement_duration_seconds_count\{shape="select pg_sleep\(\?\)",target="primary"\} 2$/m);
    // One of the two was at least 0.2 s: it is not in the 0.1 s bucket, but is in the 0.5 s one.
    expect(text).toMatch(/^db_statement_duration_seconds_bucket\{le="0.1",shape="select pg_sleep\(\?\)",target="primary"\} 1$/m);
    expect(text).toMatch(/^db_statement_duration_seconds_bucket\{le="0.5",shape="select pg_sleep\(\?\)",target="primary"\} 2$/m);
  });
});
