import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/test-app.js';
import { NaivePaymentsResolver } from '../helpers/naive.resolver.js';

const lines: Record<string, any>[] = [];
let t: TestApp;

beforeAll(async () => {
  t = await createTestApp({
    seed: { users: 3, paymentsPerUser: 4 },
    env: { LOG_LEVEL: 'info', CACHE_ENABLED: 'true', N_PLUS_ONE: 'warn' },
    appOptions: { logStream: { write: (line: string) => void lines.push(JSON.parse(line)) }, extraResolvers: [NaivePaymentsResolver] },
  });
});
afterAll(async () => t?.close());

describe('the operation log', () => {
  it('writes one line per operation with request id, viewer, outcome, duration, SQL and cache stats', async () => {
    const token = await t.userToken(2);
    await t.gql('{ __typename }', { token }); // the viewer's state is cached from here on
    lines.length = 0;
    await t.gql('query History { paymentHistory(first: 2) { nodes { id } } me { id paymentCount } }', { token, headers: { 'x-request-id': 'log-test-1' } });
    const ops = lines.filter((l) => l.msg === 'graphql operation');
    expect(ops).toHaveLength(1);
    expect(ops[0]).toMatchObject({
      requestId: expect.stringMatching(/^[0-9a-f-]{36}$/),
      clientRequestId: 'log-test-1',
      operation: 'History',
      viewer: 2,
      outcome: 'ok',
      sql: { statements: 2 },
      cache: { misses: 2, sets: 2, hits: 0, errors: 0 },
    });
    expect(ops[0]!.durationMs).toBeGreaterThan(0);

    // The same again is answered by the response cache: still one line, saying so.
    lines.length = 0;
    await t.gql('query History { paymentHistory(first: 2) { nodes { id } } me { id paymentCount } }', { token, headers: { 'x-request-id': 'log-test-2' } });
    const again = lines.filter((l) => l.msg === 'graphql operation');
    expect(again).toHaveLength(1);
    expect(again[0]).toMatchObject({ requestId: expect.stringMatching(/^[0-9a-f-]{36}$/), clientRequestId: 'log-test-2', operation: 'History', viewer: 2, outcome: 'ok', sql: { statements: 0 }, responseCache: 'hit' });
  });

  it('records the error codes of a failed operation', async () => {
    lines.length = 0;
    await t.gql('{ users { nodes { id } } }', { token: await t.userToken(2) });
    const [op] = lines.filter((l) => l.msg === 'graphql operation');
    expect(op).toMatchObject({ outcome: 'error', errors: ['FORBIDDEN'], sql: { statements: 0 } });
  });
});

describe('the N+1 detector in warn mode', () => {
  it('answers, and logs a warning naming the repeated SQL shape and the GraphQL path', async () => {
    await t.gql('{ __typename }', { token: await t.adminToken() }); // the viewer's state is cached from here on
    lines.length = 0;
    const r = await t.gql('{ users(first: 3) { nodes { naivePayments { id } } } }', { token: await t.adminToken() });
    expect(r.body.errors).toBeUndefined();
    expect(r.statements).toBe(4);
    // 3 users: under the threshold of 5, nothing to report.
    expect(lines.filter((l) => l.msg === 'N+1 query detected')).toHaveLength(0);

    await t.sql(`insert into users (email, name) select 'extra' || g || '@paygraph.dev', 'Extra' from generate_series(1, 4) g`);
    const many = await t.gql('{ users(first: 7) { nodes { naivePayments { id } } } }', { token: await t.adminToken() });
    expect(many.body.errors).toBeUndefined();
    const [warning] = lines.filter((l) => l.msg === 'N+1 query detected');
    expect(warning).toMatchObject({ level: 40, repeated: [{ count: 7, path: 'users.nodes.*.naivePayments' }] });
    expect(warning!.repeated[0].shape).toContain('from "payments"');
  });
});
