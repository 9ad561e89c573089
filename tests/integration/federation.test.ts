import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'graphql';
import { ApolloServer } from '@apollo/server';
import { startStandaloneServer } from '@apollo/server/standalone';
import { buildSubgraphSchema } from '@apollo/subgraph';
import { composeServices } from '@apollo/composition';
import { ApolloGateway, RemoteGraphQLDataSource } from '@apollo/gateway';
import { createTestApp, postTo, type TestApp } from '../helpers/test-app.js';
import { projectRoot } from '../helpers/server-process.js';
import { documentHash } from '../../src/modules/documents/trusted-documents.js';
import { subscribeWith, wsClient } from '../helpers/ws-client.js';

/**
 * paygraph as an Apollo Federation 2 subgraph (GRAPHQL_FEDERATION=true), under a real gateway: its
 * served SDL composed with a second subgraph defined here (orders, which extends User and references
 * Payment by key) by @apollo/composition, and @apollo/gateway in-process over both, over HTTP.
 */

const ORDERS_SDL = parse(`
  extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key"])
  type Order { id: ID! payment: Payment }
  type User @key(fields: "id") { id: ID! orders: [Order!]! }
  type Payment @key(fields: "id", resolvable: false) { id: ID! }
  type Query { orders: [Order!]! }
`);

/** Orders of users 2 and 3, each naming one payment of its user; order o-x names user 3's payment for user 2. */
interface Order {
  id: string;
  userId: string;
  paymentId: string;
}

const REPRESENTATIONS = 'query($r: [_Any!]!) { _entities(representations: $r) { __typename ... on User { id email } ... on Payment { id amount user { email } } } }';

describe('a federation subgraph', () => {
  let t: TestApp;
  let admin: string;
  let user2: string;
  let orders: Order[];
  let ordersServer: ApolloServer;
  let router: ApolloServer;
  let paygraphSdl: string;

  beforeAll(async () => {
    t = await createTestApp({ seed: { users: 120, paymentsPerUser: 3 }, env: { GRAPHQL_FEDERATION: 'true' } });
    admin = await t.adminToken();
    user2 = await t.userToken(2);
    const paymentOf = async (userId: number, n: number) =>
      String((await t.sql<{ id: number }>('select id from payments where user_id = ? order by id limit 1 offset ?', [userId, n]))[0]!.id);
    orders = [
      { id: 'o-1', userId: '2', paymentId: await paymentOf(2, 0) },
      { id: 'o-2', userId: '2', paymentId: await paymentOf(2, 1) },
      { id: 'o-x', userId: '2', paymentId: await paymentOf(3, 0) },
      { id: 'o-3', userId: '3', paymentId: await paymentOf(3, 1) },
    ];
    await t.app.fastify.listen({ host: '127.0.0.1', port: 0 });
    const address = t.app.fastify.server.address();
    const paygraphUrl = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/graphql`;

    const byUser = (id: string) => orders.filter((o) => o.userId === id).map((o) => ({ id: o.id, payment: { __typename: 'Payment', id: o.paymentId } }));
    ordersServer = new ApolloServer({
      schema: buildSubgraphSchema({
        typeDefs: ORDERS_SDL,
        resolvers: {
          Query: { orders: () => orders.map((o) => ({ id: o.id, payment: { __typename: 'Payment', id: o.paymentId } })) },
          User: { __resolveReference: (ref: { id: string }) => ({ id: ref.id }), orders: (user: { id: string }) => byUser(user.id) },
        } as never,
      }),
    });
    const { url: ordersUrl } = await startStandaloneServer(ordersServer, { listen: { host: '127.0.0.1', port: 0 } });

    // What a router reads from a subgraph: its SDL, from `_service`.
    const served = await t.gql('{ _service { sdl } }', { token: admin });
    expect(served.body.errors).toBeUndefined();
    paygraphSdl = (served.body.data as { _service: { sdl: string } })._service.sdl;
    const composed = composeServices([
      { name: 'paygraph', typeDefs: parse(paygraphSdl), url: paygraphUrl },
      { name: 'orders', typeDefs: ORDERS_SDL, url: ordersUrl },
    ]);
    expect(composed.errors ?? []).toEqual([]);
    const gateway = new ApolloGateway({
      supergraphSdl: composed.supergraphSdl!,
      // The router forwards the client's bearer token to each subgraph: paygraph authorizes as ever.
      buildService: ({ url }) =>
        new RemoteGraphQLDataSource<{ authorization?: string }>({
          url,
          willSendRequest({ request, context }) {
            if (context.authorization) request.http!.headers.set('authorization', context.authorization);
          },
        }),
    });
    router = new ApolloServer({ gateway: gateway as never });
    await router.start();
  });
  afterAll(async () => {
    await router?.stop();
    await ordersServer?.stop();
    await t?.close();
  });

  /** An operation through the router, with paygraph's statements for all of it. */
  async function viaRouter(query: string, token: string): Promise<{ data: any; errors: unknown; statements: number }> {
    const before = t.app.sqlTotals.attributed + t.app.sqlTotals.unattributed;
    const res = await router.executeOperation({ query }, { contextValue: { authorization: `Bearer ${token}` } });
    if (res.body.kind !== 'single') throw new Error('expected a single result');
    const statements = t.app.sqlTotals.attributed + t.app.sqlTotals.unattributed - before;
    return { data: res.body.singleResult.data, errors: res.body.singleResult.errors, statements };
  }

  it('serves the committed subgraph SDL, with User and Payment keyed by id', () => {
    expect(`${paygraphSdl}\n`).toBe(readFileSync(path.join(projectRoot, 'schema.subgraph.graphql'), 'utf8'));
    expect(paygraphSdl).toMatch(/type User\s+@key\(fields: "id"\)/);
    expect(paygraphSdl).toMatch(/type Payment\s+@key\(fields: "id"\)/);
  });

  it('through the router: me with orders from the other subgraph and their payments from paygraph, 1 statement here', async () => {
    await viaRouter('{ me { id } }', user2); // the viewer's row, read once and then shared
    const r = await viaRouter('{ me { email orders { id payment { amount status } } } }', user2);
    expect(r.errors).toBeUndefined();
    expect(r.data.me.email).toBe('user2@paygraph.dev');
    const amounts = await t.sql<{ id: number; amount: number; status: string }>('select id, amount, status from payments where id = any(?::int[])', [`{${orders.map((o) => o.paymentId).join(',')}}`]);
    const of = (id: string) => amounts.find((a) => String(a.id) === id)!;
    // User 3's payment, referenced from user 2's order, is null to user 2: as if it did not exist.
    expect(r.data.me.orders).toEqual([
      { id: 'o-1', payment: { amount: of(orders[0]!.paymentId).amount, status: of(orders[0]!.paymentId).status } },
      { id: 'o-2', payment: { amount: of(orders[1]!.paymentId).amount, status: of(orders[1]!.paymentId).status } },
      { id: 'o-x', payment: null },
    ]);
    // `me` answers from the viewer's row the request already holds (0), and one `_entities` for every
    // payment is one statement (the payments with their users).
    expect(r.statements).toBe(1);
  });

  it("through the router: an ADMIN's list of orders with their payments' users, 1 statement here", async () => {
    await viaRouter('{ me { id } }', admin);
    const r = await viaRouter('{ orders { id payment { amount user { email } } } }', admin);
    expect(r.errors).toBeUndefined();
    expect(r.data.orders.map((o: { payment: { user: { email: string } } }) => o.payment.user.email)).toEqual([
      'user2@paygraph.dev',
      'user2@paygraph.dev',
      'user3@paygraph.dev',
      'user3@paygraph.dev',
    ]);
    // The payments and their users in one statement (the users primed, as payment(id) does).
    expect(r.statements).toBe(1);
  });

  it('_entities: 100 User representations cost 1 statement, 100 Payment representations 1 (their users primed), a mix 2', async () => {
    await t.gql('{ __typename }', { token: admin });
    const users = Array.from({ length: 100 }, (_, i) => ({ __typename: 'User', id: String(i + 2) }));
    const u = await t.gql(REPRESENTATIONS, { token: admin, variables: { r: users } });
    expect(u.body.errors).toBeUndefined();
    expect((u.body.data as any)._entities.map((e: { email: string }) => e.email)).toEqual(users.map((x) => `user${x.id}@paygraph.dev`));
    expect(u.statements).toBe(1);

    const ids = (await t.sql<{ id: number }>('select id from payments order by id limit 100')).map((p) => String(p.id));
    const payments = ids.map((id) => ({ __typename: 'Payment', id }));
    const p = await t.gql(REPRESENTATIONS, { token: admin, variables: { r: payments } });
    expect(p.body.errors).toBeUndefined();
    expect((p.body.data as any)._entities.map((e: { id: string }) => e.id)).toEqual(ids);
    expect(p.statements).toBe(1);

    const mixed = await t.gql(REPRESENTATIONS, { token: admin, variables: { r: [...users.slice(50, 60), ...payments.slice(50, 60)] } });
    expect(mixed.body.errors).toBeUndefined();
    expect(mixed.statements).toBe(2);
  });

  it('_entities: duplicates and unknown ids answer in order, null for a missing one', async () => {
    const r = await t.gql(REPRESENTATIONS, {
      token: admin,
      variables: { r: [{ __typename: 'User', id: '5' }, { __typename: 'User', id: '999999' }, { __typename: 'User', id: '5' }, { __typename: 'Payment', id: '999999' }, { __typename: 'User', id: 'x' }] },
    });
    expect(r.body.errors).toBeUndefined();
    expect((r.body.data as any)._entities).toEqual([{ __typename: 'User', id: '5', email: 'user5@paygraph.dev' }, null, { __typename: 'User', id: '5', email: 'user5@paygraph.dev' }, null, null]);
    // One for the users (5 once, 999999 found missing), one for the payment; 'x' is no id of ours and reads nothing.
    expect(r.statements).toBe(2);
  });

  it("_entities: a USER gets null for another user and for another user's payment, their own as user(id) and payment(id) give it", async () => {
    const [mine, theirs] = (await t.sql<{ id: number }>('select id from payments where user_id in (2, 3) order by user_id, id limit 1 offset 0')).concat(
      await t.sql<{ id: number }>('select id from payments where user_id = 3 order by id limit 1'),
    );
    const r = await t.gql(REPRESENTATIONS, {
      token: user2,
      variables: { r: [{ __typename: 'User', id: '2' }, { __typename: 'User', id: '3' }, { __typename: 'Payment', id: String(mine!.id) }, { __typename: 'Payment', id: String(theirs!.id) }] },
    });
    expect(r.body.errors).toBeUndefined();
    const entities = (r.body.data as any)._entities;
    expect(entities[0]).toEqual({ __typename: 'User', id: '2', email: 'user2@paygraph.dev' });
    expect(entities[1]).toBeNull();
    expect(entities[2]).toMatchObject({ __typename: 'Payment', id: String(mine!.id), user: { email: 'user2@paygraph.dev' } });
    expect(entities[3]).toBeNull();
    // The same refusals as the root fields, which answer NOT_FOUND instead of null.
    const direct = await t.gql(`{ payment(id: "${theirs!.id}") { id } }`, { token: user2 });
    expect(direct.body.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
  });

  it('_entities without a token: UNAUTHENTICATED, nothing read', async () => {
    const res = await postTo(t.app, REPRESENTATIONS, { variables: { r: [{ __typename: 'User', id: '2' }] } });
    expect((res.body as any).errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    expect((res.body as any).data?._entities ?? [null]).toEqual([null]);
  });

  it('_entities responses are kept by the response cache and dropped by a write to what they read, as any read; what they cached is still refused to a USER it is not theirs', async () => {
    const c = await createTestApp({ seed: { users: 5, paymentsPerUser: 1 }, env: { GRAPHQL_FEDERATION: 'true', CACHE_ENABLED: 'true', RESPONSE_CACHE_ENABLED: 'true' } });
    try {
      const token = await c.adminToken();
      const query = 'query($r: [_Any!]!) { _entities(representations: $r) { ... on User { id name } } }';
      const ask = () => postTo(c.app, query, { token, variables: { r: [{ __typename: 'User', id: '3' }] } });
      const first = await ask();
      expect(first.headers['x-response-cache']).toBe('miss');
      const totals = () => c.app.sqlTotals.attributed + c.app.sqlTotals.unattributed;
      const before = totals();
      const hit = await ask();
      expect(hit.headers['x-response-cache']).toBe('hit');
      expect(totals() - before).toBe(0);
      expect((hit.body as any).data).toEqual((first.body as any).data);
      const write = await postTo(c.app, 'mutation { updateUser(id: "3", input: { name: "Renamed" }) { id } }', { token });
      expect((write.body as { errors?: unknown }).errors).toBeUndefined();
      const after = await ask();
      expect(after.headers['x-response-cache']).toBe('miss');
      expect((after.body as any).data._entities).toEqual([{ id: '3', name: 'Renamed' }]);

      // With the caches on, what an ADMIN's reference left in them is still refused to a USER it is not theirs.
      const [{ id: paymentId }] = await c.sql<{ id: number }>('select id from payments where user_id = 3 order by id limit 1');
      const refs = 'query($r: [_Any!]!) { _entities(representations: $r) { ... on Payment { id amount } ... on User { id } } }';
      const r = { r: [{ __typename: 'Payment', id: String(paymentId) }, { __typename: 'User', id: '3' }] };
      const byAdmin = await postTo(c.app, refs, { token, variables: r });
      expect((byAdmin.body as any).data._entities.map((e: { id: string } | null) => e?.id)).toEqual([String(paymentId), '3']);
      const user2 = await c.userToken(2);
      const byUser = await postTo(c.app, refs, { token: user2, variables: r });
      expect((byUser.body as any).errors).toBeUndefined();
      expect((byUser.body as any).data._entities).toEqual([null, null]);
    } finally {
      await c.close();
    }
  });

  it("subgraph requests meet the same limits and trusted documents: the router's listed _entities runs, an unlisted one and one too deep are refused with their codes", async () => {
    const listed = 'query Refs($r: [_Any!]!) { _entities(representations: $r) { ... on Payment { id user { email } } } }';
    const deep = 'query Deep($r: [_Any!]!) { _entities(representations: $r) { ... on User { payments(first: 1) { nodes { user { payments(first: 1) { nodes { id } } } } } } } }';
    const dir = await mkdtemp(path.join(tmpdir(), 'paygraph-subgraph-'));
    const manifest = path.join(dir, 'persisted-documents.json');
    await writeFile(manifest, JSON.stringify(Object.fromEntries([listed, deep].map((d) => [documentHash(d), d]))));
    const c = await createTestApp({ seed: { users: 3, paymentsPerUser: 1 }, env: { GRAPHQL_FEDERATION: 'true', GRAPHQL_TRUSTED_DOCUMENTS: manifest, GRAPHQL_MAX_DEPTH: '4' } });
    try {
      const token = await c.adminToken();
      const ok = await postTo(c.app, listed, { token, variables: { r: [{ __typename: 'Payment', id: '1' }] } });
      expect((ok.body as any).errors).toBeUndefined();
      expect((ok.body as any).data._entities).toEqual([{ id: '1', user: { email: 'admin@paygraph.dev' } }]);
      const unlisted = await postTo(c.app, 'query($r: [_Any!]!) { _entities(representations: $r) { ... on User { email } } }', { token, variables: { r: [{ __typename: 'User', id: '2' }] } });
      expect((unlisted.body as any).errors[0].extensions.code).toBe('TRUSTED_DOCUMENT_REQUIRED');
      const tooDeep = await postTo(c.app, deep, { token, variables: { r: [{ __typename: 'User', id: '2' }] } });
      expect((tooDeep.body as any).errors[0]).toMatchObject({ extensions: { code: 'GRAPHQL_VALIDATION_FAILED' }, message: expect.stringMatching(/Query depth limit of 4 exceeded/) });
    } finally {
      await c.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('still serves its own subscriptions in federation mode (graphql-ws on /graphql, authorized as ever)', async () => {
    const address = t.app.fastify.server.address();
    const url = `ws://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/graphql`;
    const [{ id: theirs }] = await t.sql<{ id: number }>('select id from payments where user_id = 3 order by id limit 1');
    const client = wsClient(url, user2);
    try {
      // Another user's payment: refused by the subscription's own resolver, as without federation.
      const prying = subscribeWith(client, 'subscription($id: ID) { paymentUpdated(id: $id) { id } }', { id: String(theirs) });
      await prying.waitFor(1, 3000);
      expect(prying.results[0]).toMatchObject({ errors: [{ extensions: { code: 'NOT_FOUND' } }] });
      // Their own stream is opened.
      const before = t.app.realtime.activeSubscriptions;
      const own = subscribeWith(client, 'subscription { paymentUpdated { id status } }');
      for (let i = 0; i < 200 && t.app.realtime.activeSubscriptions <= before; i++) await new Promise((r) => setTimeout(r, 10));
      expect(t.app.realtime.activeSubscriptions).toBe(before + 1);
      await own.dispose();
    } finally {
      await client.dispose();
    }
  });
});
