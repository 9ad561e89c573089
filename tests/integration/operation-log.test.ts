import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/test-app.js';

const lines: Record<string, any>[] = [];
let t: TestApp;

beforeAll(async () => {
  t = await createTestApp({
    seed: { users: 3, paymentsPerUser: 4 },
    env: { LOG_LEVEL: 'info', CACHE_ENABLED: 'true' },
    appOptions: { logStream: { write: (line: string) => void lines.push(JSON.parse(line)) } },
  });
});
afterAll(async () => t?.close());

describe('the operation log', () => {
  it('writes one line per operation with request id, viewer, outcome, duration, SQL and cache stats', async () => {
    lines.length = 0;
    const token = await t.userToken(2);
    await t.gql('query History { paymentHistory(first: 2) { nodes { id } } me { id } }', { token, headers: { 'x-request-id': 'log-test-1' } });
    const ops = lines.filter((l) => l.msg === 'graphql operation');
    expect(ops).toHaveLength(1);
    expect(ops[0]).toMatchObject({
      requestId: 'log-test-1',
      operation: 'History',
      viewer: 2,
      outcome: 'ok',
      sql: { statements: 2 },
      cache: { misses: 1, sets: 1, hits: 0, errors: 0 },
    });
    expect(ops[0]!.durationMs).toBeGreaterThan(0);
  });

  it('records the error codes of a failed operation', async () => {
    lines.length = 0;
    await t.gql('{ users { nodes { id } } }', { token: await t.userToken(2) });
    const [op] = lines.filter((l) => l.msg === 'graphql operation');
    expect(op).toMatchObject({ outcome: 'error', errors: ['FORBIDDEN'], sql: { statements: 0 } });
  });
});
