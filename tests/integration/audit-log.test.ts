import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/test-app.js';
import { signedEvent, stripeEnvFor, StripeDouble } from '../helpers/stripe-double.js';

/**
 * The audit trail: every write path leaves exactly its entry, with the right actor, in the same
 * transaction as the change (a write that rolls back leaves none); the log is append-only and only
 * ADMINs read it, a page at one statement.
 */
let stripe: StripeDouble;
let t: TestApp;
let admin: string;
let user2: string;
let keySeq = 0;

beforeAll(async () => {
  stripe = await StripeDouble.start();
  t = await createTestApp({
    seed: { users: 4, paymentsPerUser: 2 },
    env: stripeEnvFor(stripe, { RECONCILE_INTERVAL_SECONDS: '0' }),
  });
  admin = await t.adminToken();
  user2 = await t.userToken(2);
});
afterAll(async () => {
  await t?.close();
  await stripe?.close();
});

interface Entry {
  actor_type: string;
  actor_id: number | null;
  action: string;
  before: Record<string, unknown> | null;
  after: Record<string, unknown> | null;
  request_id: string | null;
  client_request_id: string | null;
}
const entries = (type: 'USER' | 'PAYMENT', id: number | string) =>
  t.sql<Entry>('select actor_type, actor_id, action, before, after, request_id, client_request_id from audit_log where entity_type = ? and entity_id = ? order by id', [type, Number(id)]);
/** The request's own id, as the server answered it (the audit log's `request_id`). */
const serverId = (r: { headers: Record<string, unknown> }) => r.headers['x-request-id'] as string;
const allEntries = async () => (await t.sql<{ n: number }>('select count(*)::int as n from audit_log'))[0]!.n;

const CREATE_USER = 'mutation($input: CreateUserInput!) { createUser(input: $input) { id } }';
const UPDATE_USER = 'mutation($id: ID!, $input: UpdateUserInput!) { updateUser(id: $id, input: $input) { id } }';

describe('user writes', () => {
  it('createUser, updateUser and deleteUser each leave exactly their entry, by their actor, with the request id', async () => {
    const created = await t.gql(CREATE_USER, { token: admin, variables: { input: { email: 'audited@example.com', name: 'Audited' } }, headers: { 'x-request-id': 'audit-create-1' } });
    const id = created.body.data!.createUser.id;
    expect(await entries('USER', id)).toEqual([
      {
        actor_type: 'USER',
        actor_id: 1,
        action: 'create',
        before: null,
        after: { email: 'audited@example.com', name: 'Audited', role: 'USER', isActive: true, deletedAt: null },
        request_id: serverId(created),
        client_request_id: 'audit-create-1',
      },
    ]);
    expect(await t.sql('select created_by, updated_by from users where id = ?', [Number(id)])).toEqual([{ created_by: 1, updated_by: 1 }]);

    // The user renames themself: only the changed field, with the user as actor.
    const token = await t.userToken(Number(id));
    const renamed = await t.gql(UPDATE_USER, { token, variables: { id, input: { name: 'Renamed', email: 'audited@example.com' } }, headers: { 'x-request-id': 'audit-update-1' } });
    // A change to nothing changes nothing and writes nothing.
    await t.gql(UPDATE_USER, { token, variables: { id, input: { name: 'Renamed' } } });
    await t.gql('mutation($id: ID!) { deleteUser(id: $id) }', { token: admin, variables: { id } });

    const log = await entries('USER', id);
    expect(log.map((e) => [e.actor_type, e.actor_id, e.action])).toEqual([
      ['USER', 1, 'create'],
      ['USER', Number(id), 'update'],
      ['USER', 1, 'delete'],
    ]);
    expect(log[1]).toMatchObject({ before: { name: 'Audited' }, after: { name: 'Renamed' }, request_id: serverId(renamed), client_request_id: 'audit-update-1' });
    expect(log[2]).toMatchObject({ before: { deletedAt: null }, after: { deletedAt: expect.any(String) } });
    expect(await t.sql('select updated_by from users where id = ?', [Number(id)])).toEqual([{ updated_by: 1 }]);
  });

  it("a client's x-request-id is recorded beside the request's own id, never as it: two requests sending one id stay two", async () => {
    const own = (await t.gql(CREATE_USER, { token: admin, variables: { input: { email: 'reused-id@example.com', name: 'Reused' } } })).body.data!.createUser.id as string;
    const a = await t.gql(UPDATE_USER, { token: admin, variables: { id: own, input: { name: 'Same Client Id A' } }, headers: { 'x-request-id': 'reused-id' } });
    const b = await t.gql(UPDATE_USER, { token: admin, variables: { id: own, input: { name: 'Same Client Id B' } }, headers: { 'x-request-id': 'reused-id' } });
    const [ea, eb] = (await entries('USER', own)).slice(-2);
    expect([ea!.request_id, eb!.request_id]).toEqual([serverId(a), serverId(b)]);
    expect(serverId(a)).toMatch(/^[0-9a-f-]{36}$/);
    expect(serverId(a)).not.toBe(serverId(b));
    expect([ea!.client_request_id, eb!.client_request_id]).toEqual(['reused-id', 'reused-id']);
    // Through GraphQL too, for ADMINs reading the trail.
    const read = await t.gql(`{ auditLog(entityType: USER, entityId: "${own}", first: 1) { nodes { requestId clientRequestId } } }`, { token: admin });
    expect(read.body.data!.auditLog.nodes).toEqual([{ requestId: serverId(b), clientRequestId: 'reused-id' }]);
  });

  it('a write that fails leaves no entry and changes nothing', async () => {
    const before = await allEntries();
    // CONFLICT: the email is taken (the insert rolls back).
    const dup = await t.gql(CREATE_USER, { token: admin, variables: { input: { email: 'user2@paygraph.dev', name: 'Twin' } } });
    expect(dup.body.errors?.[0]?.extensions?.code).toBe('CONFLICT');
    // CONFLICT inside the update's transaction: the row was locked and changed, then the flush failed.
    const taken = await t.gql(UPDATE_USER, { token: admin, variables: { id: '3', input: { email: 'user4@paygraph.dev', name: 'Changed Too' } } });
    expect(taken.body.errors?.[0]?.extensions?.code).toBe('CONFLICT');
    expect(await t.sql('select email, name from users where id = 3')).toEqual([{ email: 'user3@paygraph.dev', name: 'Demo User 3' }]);
    // Refused before any write: FORBIDDEN, NOT_FOUND.
    await t.gql(UPDATE_USER, { token: user2, variables: { id: '2', input: { role: 'ADMIN' } } });
    await t.gql('mutation { deleteUser(id: "999") }', { token: admin });
    expect(await allEntries()).toBe(before);
  });
});

describe('one transaction', () => {
  it('a change whose audit entry cannot be written is rolled back with it', async () => {
    // Make the database refuse one particular entry, as a failure after the change and before commit.
    await t.sql(`create function refuse_poison() returns trigger language plpgsql as $$
      begin if new.after->>'name' = 'Poison' then raise exception 'poisoned audit entry'; end if; return new; end $$`);
    await t.sql('create trigger refuse_poison before insert on audit_log for each row execute function refuse_poison()');
    try {
      const before = await allEntries();
      const r = await t.gql(UPDATE_USER, { token: admin, variables: { id: '3', input: { name: 'Poison' } } });
      expect(r.body.errors?.[0]?.extensions?.code).toBe('INTERNAL_SERVER_ERROR');
      expect(await t.sql('select name from users where id = 3')).toEqual([{ name: 'Demo User 3' }]);
      expect(await allEntries()).toBe(before);
    } finally {
      await t.sql('drop trigger refuse_poison on audit_log');
      await t.sql('drop function refuse_poison()');
    }
  });
});

describe('payment writes', () => {
  const create = (key: string) =>
    t.gql('mutation($input: CreatePaymentInput!) { createPayment(input: $input) { payment { id stripePaymentId } } }', {
      token: user2,
      variables: { input: { amount: 3000, currency: 'usd', idempotencyKey: key } },
      headers: { 'x-request-id': `req-${key}` },
    });
  const deliver = async (event: { payload: string; signature: string }) =>
    (await t.app.fastify.inject({ method: 'POST', url: '/webhooks/stripe', headers: { 'content-type': 'application/json', 'stripe-signature': event.signature }, payload: event.payload })).json();

  it('create, webhook transitions, refund and cancel: each its entry, by the user or by Stripe (with the event id)', async () => {
    const key = `audit-pay-${++keySeq}`;
    const first = await create(key);
    const { id, stripePaymentId: intent } = first.body.data!.createPayment.payment;
    // The same key again: the same payment, no second entry.
    await create(key);
    const succeeded = signedEvent('payment_intent.succeeded', { id: intent, object: 'payment_intent' });
    await deliver(succeeded);
    await deliver(succeeded); // a redelivery changes nothing, writes nothing
    const refund = await t.gql(`mutation { refundPayment(id: "${id}", amount: 1000, idempotencyKey: "audit-refund-${keySeq}") { id } }`, { token: admin, headers: { 'x-request-id': 'req-refund' } });
    const refunded = signedEvent('charge.refunded', { id: `ch_${intent}`, object: 'charge', payment_intent: intent, amount: 3000, amount_refunded: 1000, refunded: false });
    await deliver(refunded);

    const log = await entries('PAYMENT', id);
    expect(log).toEqual([
      { actor_type: 'USER', actor_id: 2, action: 'create', before: null, after: { userId: 2, amount: 3000, currency: 'usd', description: null, status: 'PENDING' }, request_id: serverId(first), client_request_id: `req-${key}` },
      { actor_type: 'USER', actor_id: 2, action: 'intent_created', before: { stripePaymentId: null }, after: { stripePaymentId: intent }, request_id: serverId(first), client_request_id: `req-${key}` },
      { actor_type: 'STRIPE', actor_id: null, action: 'status_changed', before: { status: 'PENDING' }, after: { status: 'COMPLETED' }, request_id: succeeded.id, client_request_id: null },
      { actor_type: 'USER', actor_id: 1, action: 'refund_requested', before: { refundRequestedTotal: 0 }, after: { refundRequestedTotal: 1000, amount: 1000 }, request_id: serverId(refund), client_request_id: 'req-refund' },
      { actor_type: 'STRIPE', actor_id: null, action: 'refund_recorded', before: { amountRefunded: 0 }, after: { amountRefunded: 1000 }, request_id: refunded.id, client_request_id: null },
    ]);
    expect(await t.sql('select created_by, updated_by from payments where id = ?', [Number(id)])).toEqual([{ created_by: 2, updated_by: null }]);

    const other = (await create(`audit-pay-${++keySeq}`)).body.data!.createPayment.payment;
    const cancel = await t.gql(`mutation { cancelPayment(id: "${other.id}") { id } }`, { token: user2, headers: { 'x-request-id': 'req-cancel' } });
    expect((await entries('PAYMENT', other.id)).at(-1)).toEqual({
      actor_type: 'USER',
      actor_id: 2,
      action: 'cancel_requested',
      before: null,
      after: { stripePaymentId: other.stripePaymentId },
      request_id: serverId(cancel),
      client_request_id: 'req-cancel',
    });
  });

  it('a declined payment is recorded FAILED with its reason', async () => {
    stripe.setMode('decline', 1);
    const r = await create(`audit-pay-${++keySeq}`);
    const id = r.body.data!.createPayment.payment.id;
    expect((await entries('PAYMENT', id)).map((e) => [e.action, e.after])).toEqual([
      ['create', { userId: 2, amount: 3000, currency: 'usd', description: null, status: 'PENDING' }],
      ['status_changed', { status: 'FAILED', failureReason: 'Your card was declined.' }],
    ]);
  });
});

describe('the log itself', () => {
  it('is append-only: the database refuses to update or delete an entry', async () => {
    await expect(t.sql(`update audit_log set action = 'forged'`)).rejects.toThrow(/append-only: UPDATE refused/);
    await expect(t.sql('delete from audit_log')).rejects.toThrow(/append-only: DELETE refused/);
  });

  it('is for ADMINs only', async () => {
    const r = await t.gql('{ auditLog(entityType: USER, entityId: "2") { nodes { id } } }', { token: user2 });
    expect(r.body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    expect(r.statements).toBe(0);
  });

  it('pages newest first with cursors, at one statement (plus one for totalCount)', async () => {
    // Five renames of user 4: five entries.
    for (let i = 1; i <= 5; i++) await t.gql(UPDATE_USER, { token: admin, variables: { id: '4', input: { name: `Name ${i}` } } });
    await t.gql('{ __typename }', { token: admin });
    const q = (after?: string) =>
      t.gql(`{ auditLog(entityType: USER, entityId: "4", first: 2${after ? `, after: "${after}"` : ''}) { nodes { id actorType actorId action before after createdAt } pageInfo { hasNextPage endCursor } } }`, { token: admin });
    const first = await q();
    expect(first.statements).toBe(1);
    expect(first.body.data!.auditLog.nodes.map((n: { after: { name: string } }) => n.after.name)).toEqual(['Name 5', 'Name 4']);
    expect(first.body.data!.auditLog.nodes[0]).toMatchObject({ actorType: 'USER', actorId: '1', action: 'update', before: { name: 'Name 4' } });
    const second = await q(first.body.data!.auditLog.pageInfo.endCursor);
    expect(second.body.data!.auditLog.nodes.map((n: { after: { name: string } }) => n.after.name)).toEqual(['Name 3', 'Name 2']);
    const third = await q(second.body.data!.auditLog.pageInfo.endCursor);
    expect(third.body.data!.auditLog.nodes.map((n: { after: { name: string } }) => n.after.name)).toEqual(['Name 1']);
    expect(third.body.data!.auditLog.pageInfo.hasNextPage).toBe(false);

    const counted = await t.gql('{ auditLog(entityType: USER, entityId: "4", first: 1) { totalCount nodes { id } } }', { token: admin });
    expect(counted.body.data!.auditLog.totalCount).toBe(5);
    expect(counted.statements).toBe(2);
    const bad = await t.gql('{ auditLog(entityType: USER, entityId: "4", after: "bm9wZQ") { nodes { id } } }', { token: admin });
    expect(bad.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });
});
