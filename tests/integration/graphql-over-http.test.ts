import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serverAudits } from 'graphql-http';
import { createTestApp, type TestApp } from '../helpers/test-app.js';

/**
 * GraphQL over HTTP as the spec says, checked by the audit suite of the `graphql-http` package against
 * the real server (introspection on, as the suite needs), and the status rule it checks: a request that
 * cannot run is a 4xx as `application/graphql-response+json`, a 200 with errors as `application/json`.
 */
describe('GraphQL over HTTP', () => {
  let t: TestApp;
  let url: string;
  beforeAll(async () => {
    t = await createTestApp({ seed: { users: 2, paymentsPerUser: 0 }, env: { GRAPHQL_INTROSPECTION: 'true' } });
    await t.app.fastify.listen({ host: '127.0.0.1', port: 0 });
    const address = t.app.fastify.server.address() as { port: number };
    url = `http://127.0.0.1:${address.port}/graphql`;
  });
  afterAll(async () => t?.close());

  it('passes the graphql-http server audits: no error, at least 58 ok', async () => {
    const results: { id: string; name: string; status: string; reason?: string }[] = [];
    for (const audit of serverAudits({ url, fetchFn: fetch })) {
      const result = await audit.fn();
      results.push({ id: audit.id, name: audit.name, status: result.status, ...(result.status === 'ok' ? {} : { reason: result.reason }) });
    }
    const failed = results.filter((r) => r.status === 'error');
    expect(failed).toEqual([]);
    const ok = results.filter((r) => r.status === 'ok').length;
    console.log(`[graphql-http] ${ok} of ${results.length} audits ok; not ok: ${JSON.stringify(results.filter((r) => r.status !== 'ok'))}`);
    expect(ok).toBeGreaterThanOrEqual(58);
  });

  const post = (query: string, accept: string | undefined, variables?: Record<string, unknown>) =>
    fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(accept ? { accept } : {}) },
      body: JSON.stringify({ query, variables }),
    });

  it.each([
    ['a parse failure', '{ me { id', 'GRAPHQL_PARSE_FAILED', undefined],
    ['a validation failure', '{ me { nope } }', 'GRAPHQL_VALIDATION_FAILED', undefined],
    ['a variable that does not coerce', 'query($f: Int) { users(first: $f) { nodes { id } } }', 'BAD_USER_INPUT', { f: 'ten' }],
  ])('%s: 400 as application/graphql-response+json, 200 as application/json, the same code either way', async (_what, query, code, variables) => {
    for (const [accept, status, type] of [
      ['application/graphql-response+json', 400, 'application/graphql-response+json'],
      ['application/graphql-response+json, application/json;q=0.9', 400, 'application/graphql-response+json'],
      ['application/json', 200, 'application/json'],
      [undefined, 200, 'application/json'],
    ] as const) {
      const res = await post(query, accept, variables);
      expect(res.status).toBe(status);
      expect(res.headers.get('content-type')).toContain(type);
      const body = (await res.json()) as { data?: unknown; errors: { extensions: { code: string } }[] };
      expect(body.data).toBeUndefined();
      expect(body.errors[0]!.extensions.code).toBe(code);
    }
  });
});
