import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/test-app.js';
import { subscribeWith, wsClient } from '../helpers/ws-client.js';
import { createApp, type App } from '../../src/app.js';
import { documentHash } from '../../src/modules/documents/trusted-documents.js';
import { loadConfig } from '../../src/config.js';

const redisUrl = inject('redisUrl');

async function post(app: App, body: Record<string, unknown>, token?: string) {
  const res = await app.fastify.inject({
    method: 'POST',
    url: '/graphql',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    payload: JSON.stringify(body),
  });
  return { status: res.statusCode, body: res.json() };
}

describe.skipIf(!redisUrl)('automatic persisted queries shared through Redis', () => {
  let t: TestApp;
  let b: App;
  beforeAll(async () => {
    t = await createTestApp({ seed: { users: 3, paymentsPerUser: 0 }, env: { REDIS_URL: redisUrl, CACHE_NAMESPACE: `apq${randomBytes(4).toString('hex')}` } });
    b = await createApp(t.config);
  });
  afterAll(async () => {
    await b?.close();
    await t?.close();
  });

  it('a hash registered through one instance runs on the other by its hash alone', async () => {
    const token = await t.userToken(2);
    const query = `query Mine${randomBytes(3).toString('hex')} { me { id email } }`;
    const persistedQuery = { version: 1, sha256Hash: documentHash(query) };
    const unknown = await post(b, { extensions: { persistedQuery } }, token);
    expect(unknown.body.errors[0].extensions.code).toBe('PERSISTED_QUERY_NOT_FOUND');
    const registered = await post(t.app, { query, extensions: { persistedQuery } }, token);
    expect(registered.body.data).toEqual({ me: { id: '2', email: 'user2@paygraph.dev' } });
    const byHash = await post(b, { extensions: { persistedQuery } }, token);
    expect(byHash.body.errors).toBeUndefined();
    expect(byHash.body.data).toEqual({ me: { id: '2', email: 'user2@paygraph.dev' } });
  });

  it('an anonymous client cannot make the server keep a document; a client with a token can', async () => {
    const query = `query Anonymous${randomBytes(3).toString('hex')} { __typename }`;
    const persistedQuery = { version: 1, sha256Hash: documentHash(query) };
    // Sent in full without a token: it runs, and nothing is registered under its hash...
    const sent = await post(t.app, { query, extensions: { persistedQuery } });
    expect(sent.body.data).toEqual({ __typename: 'Query' });
    const anonymousByHash = await post(b, { extensions: { persistedQuery } });
    expect(anonymousByHash.body.errors[0].extensions.code).toBe('PERSISTED_QUERY_NOT_FOUND');
    // (Apollo keys its entries `apq:<hash>` inside the store's own `apq:` view.)
    const registered = () => t.app.cache.keyValueStore('apq:').get(`apq:${persistedQuery.sha256Hash}`);
    expect(await registered()).toBeUndefined();
    // ...while the same registration with a token is kept (for every instance), and then serves anyone.
    const token = await t.userToken(2);
    expect((await post(t.app, { query, extensions: { persistedQuery } }, token)).body.data).toEqual({ __typename: 'Query' });
    await expect.poll(registered).toBe(query);
    expect((await post(b, { extensions: { persistedQuery } })).body.data).toEqual({ __typename: 'Query' });
  });
});

describe('trusted documents', () => {
  const me = 'query Me { me { id email } }';
  const history = 'query History($first: Int) { paymentHistory(first: $first) { nodes { id } } }';
  const updated = 'subscription Updated { paymentUpdated { id status } }';
  let dir: string;
  let manifest: string;
  let t: TestApp;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'paygraph-trusted-'));
    manifest = path.join(dir, 'persisted-documents.json');
    await writeFile(manifest, JSON.stringify(Object.fromEntries([me, history, updated].map((d) => [documentHash(d), d]))));
    t = await createTestApp({ seed: { users: 3, paymentsPerUser: 2 }, env: { GRAPHQL_TRUSTED_DOCUMENTS: manifest, GRAPHQL_TRUSTED_DOCUMENTS_ADMIN_ANY: 'true' } });
  });
  afterAll(async () => {
    await t?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('runs a manifest operation named by documentId, by persistedQuery hash, or sent as its exact text', async () => {
    const token = await t.userToken(2);
    const expected = { data: { me: { id: '2', email: 'user2@paygraph.dev' } } };
    expect((await post(t.app, { documentId: documentHash(me) }, token)).body).toMatchObject(expected);
    expect((await post(t.app, { documentId: `sha256:${documentHash(me)}` }, token)).body).toMatchObject(expected);
    expect((await post(t.app, { extensions: { persistedQuery: { version: 1, sha256Hash: documentHash(me) } } }, token)).body).toMatchObject(expected);
    expect((await post(t.app, { query: me }, token)).body).toMatchObject(expected);
    const withVariables = await post(t.app, { documentId: documentHash(history), variables: { first: 1 } }, token);
    expect(withVariables.body.data.paymentHistory.nodes).toHaveLength(1);
  });

  it('refuses anything else before GraphQL runs, with its code', async () => {
    const token = await t.userToken(2);
    for (const body of [{ query: '{ me { id } }' }, { query: `${me} ` }, { documentId: documentHash('{ me { id } }') }]) {
      const r = await post(t.app, body, token);
      expect(r.status).toBe(400);
      expect(r.body.errors[0]).toMatchObject({ extensions: { code: 'TRUSTED_DOCUMENT_REQUIRED' }, message: expect.stringMatching(/Only trusted documents/) });
      expect(r.body.data).toBeUndefined();
    }
  });

  it('lets an ADMIN run any operation in development when GRAPHQL_TRUSTED_DOCUMENTS_ADMIN_ANY says so, never a USER', async () => {
    const any = await post(t.app, { query: '{ users(first: 1) { nodes { id } } }' }, await t.adminToken());
    expect(any.body.errors).toBeUndefined();
    expect(any.body.data).toEqual({ users: { nodes: [{ id: '1' }] } });
    expect((await post(t.app, { query: '{ me { name } }' }, await t.userToken(2))).body.errors[0].extensions.code).toBe('TRUSTED_DOCUMENT_REQUIRED');
    expect(() => loadConfig({ NODE_ENV: 'production', JWT_SECRET: 'x'.repeat(32), DATABASE_URL: 'postgresql://db/app', METRICS_PUBLIC: 'true', GRAPHQL_TRUSTED_DOCUMENTS_ADMIN_ANY: 'true' })).toThrow(
      /GRAPHQL_TRUSTED_DOCUMENTS_ADMIN_ANY: is for development/,
    );
  });

  it('holds for subscriptions too', async () => {
    await t.app.fastify.listen({ host: '127.0.0.1', port: 0 });
    const url = `ws://127.0.0.1:${(t.app.fastify.server.address() as { port: number }).port}/graphql`;
    const client = wsClient(url, await t.userToken(2));
    try {
      const refused = subscribeWith(client, 'subscription { paymentUpdated { id } }');
      await expect(refused.waitFor(1)).rejects.toThrow(/Only trusted documents/);
      const trusted = subscribeWith(client, updated);
      for (let i = 0; i < 200 && t.app.realtime.activeSubscriptions < 1; i++) await new Promise((r) => setTimeout(r, 10));
      expect(trusted.errors).toEqual([]);
      expect(t.app.realtime.activeSubscriptions).toBe(1);
    } finally {
      await client.dispose();
    }
  });

  it('refuses to start with a manifest whose entry is not the document its hash names', async () => {
    const bad = path.join(dir, 'bad.json');
    await writeFile(bad, JSON.stringify({ [documentHash(me)]: history }));
    await expect(createApp({ ...t.config, graphql: { ...t.config.graphql, trustedDocuments: bad } })).rejects.toThrow(
      new RegExp(`the entry ${documentHash(me)} in .*bad\\.json is not a document whose sha256 is its key`),
    );
  });
});
