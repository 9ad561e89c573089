import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/test-app.js';
import { loadConfig } from '../../src/config.js';

/**
 * Browsers on other origins (CORS_ORIGINS), over real HTTP: the preflight a browser sends before a
 * `POST /graphql` with a bearer token and a JSON body, then the request itself, as a page on an allowed
 * origin and on another one would make them; and the default, with no list, where nothing is allowed.
 */
const APP = 'https://app.example.com';
const OTHER = 'https://evil.example.net';

async function listen(t: TestApp): Promise<string> {
  await t.app.fastify.listen({ host: '127.0.0.1', port: 0 });
  const address = t.app.fastify.server.address();
  return `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/graphql`;
}

const preflight = (url: string, origin: string) =>
  fetch(url, {
    method: 'OPTIONS',
    headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' },
  });

describe('CORS with CORS_ORIGINS set', () => {
  let t: TestApp;
  let url: string;
  beforeAll(async () => {
    t = await createTestApp({ seed: { users: 2, paymentsPerUser: 0 }, env: { CORS_ORIGINS: `${APP}, http://localhost:5173` } });
    url = await listen(t);
  });
  afterAll(async () => t?.close());

  it('answers the preflight of a listed origin: its origin, POST, the authorization and content-type headers, credentials, cached 10 minutes', async () => {
    const res = await preflight(url, APP);
    expect(res.status).toBe(204);
    expect(res.headers.get('access-control-allow-origin')).toBe(APP);
    expect(res.headers.get('access-control-allow-methods')).toContain('POST');
    expect(res.headers.get('access-control-allow-headers')?.split(/,\s*/)).toEqual(expect.arrayContaining(['authorization', 'content-type']));
    expect(res.headers.get('access-control-allow-credentials')).toBe('true');
    expect(res.headers.get('access-control-max-age')).toBe('600');
    expect(res.headers.get('vary')).toMatch(/origin/i);
    expect((await preflight(url, 'http://localhost:5173')).headers.get('access-control-allow-origin')).toBe('http://localhost:5173');
  });

  it('lets the page read the answer and the headers it needs (x-request-id, x-response-cache, retry-after, x-ratelimit-*)', async () => {
    const res = await fetch(url, {
      method: 'POST',
      headers: { origin: APP, 'content-type': 'application/json', authorization: `Bearer ${await t.adminToken()}` },
      body: JSON.stringify({ query: '{ me { email } }' }),
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { data: unknown }).data).toEqual({ me: { email: 'admin@paygraph.dev' } });
    expect(res.headers.get('access-control-allow-origin')).toBe(APP);
    expect(res.headers.get('access-control-expose-headers')?.split(/,\s*/)).toEqual(expect.arrayContaining(['x-request-id', 'x-response-cache', 'retry-after', 'x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-used', 'x-ratelimit-reset']));
    expect(res.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    expect(res.headers.get('x-ratelimit-remaining')).toMatch(/^\d+$/);
  });

  it('gives an origin not listed no CORS header, on the preflight and on the request: the browser keeps the answer from its page', async () => {
    const pre = await preflight(url, OTHER);
    expect(pre.headers.get('access-control-allow-origin')).toBeNull();
    const res = await fetch(url, { method: 'POST', headers: { origin: OTHER, 'content-type': 'application/json' }, body: JSON.stringify({ query: '{ __typename }' }) });
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
    // A prefix or a look-alike of a listed origin is another origin.
    expect((await preflight(url, `${APP}.evil.net`)).headers.get('access-control-allow-origin')).toBeNull();
    expect((await preflight(url, 'http://app.example.com')).headers.get('access-control-allow-origin')).toBeNull();
  });
});

describe('CORS by default', () => {
  let t: TestApp;
  let url: string;
  beforeAll(async () => {
    t = await createTestApp({ seed: { users: 1, paymentsPerUser: 0 } });
    url = await listen(t);
  });
  afterAll(async () => t?.close());

  it('is off: no origin gets a CORS header, so browsers allow same-origin calls only', async () => {
    const pre = await preflight(url, APP);
    expect(pre.headers.get('access-control-allow-origin')).toBeNull();
    const res = await fetch(url, { method: 'POST', headers: { origin: APP, 'content-type': 'application/json' }, body: JSON.stringify({ query: '{ __typename }' }) });
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
  });
});

describe('CORS_ORIGINS', () => {
  const base = { NODE_ENV: 'test', DATABASE_URL: 'postgresql://localhost/x', JWT_SECRET: 'x'.repeat(32) };
  it('takes a comma-separated list of origins, and refuses "*", a path or a bare host, naming the variable', () => {
    expect(loadConfig({ ...base, CORS_ORIGINS: 'https://a.example.com, http://localhost:5173' }).corsOrigins).toEqual(['https://a.example.com', 'http://localhost:5173']);
    for (const bad of ['*', 'https://a.example.com/', 'https://a.example.com/app', 'a.example.com']) {
      expect(() => loadConfig({ ...base, CORS_ORIGINS: bad }), bad).toThrow(/CORS_ORIGINS/);
    }
  });
});
