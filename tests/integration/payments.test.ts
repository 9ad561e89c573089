import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import Stripe from 'stripe';
import { createTestApp, type TestApp } from '../helpers/test-app.js';
import { createApp } from '../../src/app.js';
import { DOUBLE_SECRET_KEY, signedEvent, stripeEnvFor, StripeDouble, WEBHOOK_SECRET } from '../helpers/stripe-double.js';

let stripe: StripeDouble;
let t: TestApp;
let admin: string;
let user2: string;
let user3: string;
let keySeq = 0;

beforeAll(async () => {
  stripe = await StripeDouble.start();
  t = await createTestApp({
    seed: { users: 4, paymentsPerUser: 0 },
    env: stripeEnvFor(stripe, { STRIPE_TIMEOUT_MS: '400', CACHE_ENABLED: 'true' }),
  });
  admin = await t.adminToken();
  user2 = await t.userToken(2);
  user3 = await t.userToken(3);
});
afterAll(async () => {
  await t?.close();
  await stripe?.close();
});
beforeEach(() => stripe.setMode('success'));

const code = (r: { body: { errors?: { extensions?: Record<string, any> }[] } }) => r.body.errors?.[0]?.extensions?.code;
const newKey = () => `key-${Date.now()}-${++keySeq}`;

const CREATE = `mutation($input: CreatePaymentInput!) {
  createPayment(input: $input) { clientSecret payment { id status amount currency stripePaymentId failureReason amountRefunded } } }`;

function create(token: string, input: Partial<{ amount: number; currency: string; description: string; idempotencyKey: string }> = {}) {
  return t.gql(CREATE, { token, variables: { input: { amount: 2500, currency: 'usd', idempotencyKey: newKey(), ...input } } });
}

async function deliver(delivery: { payload: string; signature?: string }, contentType = 'application/json') {
  const res = await t.app.fastify.inject({
    method: 'POST',
    url: '/webhooks/stripe',
    headers: { 'content-type': contentType, ...(delivery.signature !== undefined ? { 'stripe-signature': delivery.signature } : {}) },
    payload: delivery.payload,
  });
  return { status: res.statusCode, body: res.json() as { outcome?: string; error?: string } };
}

const intentEvent = (type: string, intentId: string, extra: Record<string, unknown> = {}) =>
  signedEvent(type, { id: intentId, object: 'payment_intent', ...extra });
const refundEvent = (intentId: string, amount: number, refunded: number) =>
  signedEvent('charge.refunded', { id: `ch_${intentId}`, object: 'charge', payment_intent: intentId, amount, amount_refunded: refunded, refunded: refunded >= amount });

async function dbState() {
  return t.sql('select id, status, amount_refunded, stripe_payment_id from payments order by id');
}
async function eventRows(id?: string) {
  return t.sql<{ id: string; outcome: string }>(`select id, outcome from stripe_events ${id ? 'where id = ?' : ''} order by id`, id ? [id] : []);
}

describe('createPayment', () => {
  it('creates a PENDING payment and a PaymentIntent through the real SDK, then the webhook completes it', async () => {
    const key = newKey();
    const r = await create(user2, { amount: 1999, currency: 'EUR', description: 'Order 42', idempotencyKey: key });
    expect(r.body.errors).toBeUndefined();
    const { payment, clientSecret } = r.body.data!.createPayment;
    expect(payment).toMatchObject({ status: 'PENDING', amount: 1999, currency: 'eur', amountRefunded: 0 });
    expect(clientSecret).toMatch(/^pi_double_\d+_secret_/);

    const sent = stripe.intentCreations.at(-1)!;
    expect(sent.authorization).toBe(`Bearer ${DOUBLE_SECRET_KEY}`);
    expect(sent.contentType).toMatch(/application\/x-www-form-urlencoded/);
    expect(sent.idempotencyKey).toBe(`payment:${payment.id}`);
    expect(sent.form).toMatchObject({ amount: '1999', currency: 'eur', description: 'Order 42', 'metadata[paymentId]': payment.id, 'metadata[userId]': '2' });

    const delivered = await deliver(intentEvent('payment_intent.succeeded', payment.stripePaymentId));
    expect(delivered).toEqual({ status: 200, body: { received: true, outcome: 'transitioned' } });
    const history = await t.gql('{ paymentHistory(first: 100) { nodes { id status } } }', { token: user2 });
    expect(history.body.data!.paymentHistory.nodes).toContainEqual({ id: payment.id, status: 'COMPLETED' });
  });

  it('returns the same payment for the same key, 10 times concurrently, with one PaymentIntent request', async () => {
    const key = newKey();
    const before = stripe.intentCreations.length;
    const results = await Promise.all(Array.from({ length: 10 }, () => create(user2, { idempotencyKey: key })));
    const ids = new Set(results.map((r) => r.body.data!.createPayment.payment.id));
    const secrets = new Set(results.map((r) => r.body.data!.createPayment.clientSecret));
    expect(ids.size).toBe(1);
    expect(secrets.size).toBe(1);
    expect(stripe.intentCreations.length - before).toBe(1);
    expect(await t.sql('select id from payments where idempotency_key = ?', [key])).toHaveLength(1);

    // Later, sequentially: still the same payment and secret, and still no second intent.
    const again = await create(user2, { idempotencyKey: key });
    expect(again.body.data!.createPayment.payment.id).toBe([...ids][0]);
    expect(again.body.data!.createPayment.clientSecret).toBe([...secrets][0]);
    expect(stripe.intentCreations.length - before).toBe(1);
  });

  it('returns the same payment for the same key sent 10 times concurrently to two app instances: one row, one PaymentIntent', async () => {
    // A second instance on the same database: its in-flight completions are its own, so only the
    // database's unique (user, key) and Stripe's Idempotency-Key can make the two agree.
    const other = await createApp(t.config);
    try {
      const key = newKey();
      const intentsBefore = stripe.intents.size;
      const requestsBefore = stripe.intentCreations.length;
      const token = user2;
      const viaOther = async () => {
        const res = await other.fastify.inject({
          method: 'POST',
          url: '/graphql',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
          payload: JSON.stringify({ query: CREATE, variables: { input: { amount: 2500, currency: 'usd', idempotencyKey: key } } }),
        });
        return res.json() as { data: { createPayment: { payment: { id: string }; clientSecret: string } } };
      };
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? create(token, { idempotencyKey: key }).then((r) => r.body as never) : viaOther())),
      );
      const ids = new Set(results.map((r) => (r as Awaited<ReturnType<typeof viaOther>>).data.createPayment.payment.id));
      const secrets = new Set(results.map((r) => (r as Awaited<ReturnType<typeof viaOther>>).data.createPayment.clientSecret));
      expect(ids.size).toBe(1);
      expect(secrets.size).toBe(1);
      expect(await t.sql('select id from payments where idempotency_key = ?', [key])).toHaveLength(1);
      // Each instance asked Stripe at most once, both with the key derived from the one row's id.
      const sent = stripe.intentCreations.slice(requestsBefore);
      expect(sent.length).toBeGreaterThanOrEqual(1);
      expect(sent.length).toBeLessThanOrEqual(2);
      expect(new Set(sent.map((r) => r.idempotencyKey))).toEqual(new Set([`payment:${[...ids][0]}`]));
      expect(stripe.intents.size - intentsBefore).toBe(1);
    } finally {
      await other.close();
    }
  });

  it('refuses the same key with other parameters (CONFLICT)', async () => {
    const key = newKey();
    await create(user2, { idempotencyKey: key, amount: 100 });
    const r = await create(user2, { idempotencyKey: key, amount: 200 });
    expect(code(r)).toBe('CONFLICT');
  });

  it('leaves a retryable PENDING row when Stripe answers 500, and the retry with the same key completes it', async () => {
    const key = newKey();
    stripe.setMode('error500', 1);
    const first = await create(user3, { idempotencyKey: key });
    expect(code(first)).toBe('PAYMENT_PROVIDER_UNAVAILABLE');
    const [row] = await t.sql<{ id: number; status: string; stripe_payment_id: string | null }>(
      'select id, status, stripe_payment_id from payments where idempotency_key = ?',
      [key],
    );
    expect(row).toMatchObject({ status: 'PENDING', stripe_payment_id: null });

    const retry = await create(user3, { idempotencyKey: key });
    expect(retry.body.errors).toBeUndefined();
    expect(retry.body.data!.createPayment.payment).toMatchObject({ id: String(row!.id), status: 'PENDING' });
    expect(retry.body.data!.createPayment.clientSecret).toBeTruthy();
    // Stripe replays a saved 500 for the same Idempotency-Key, so the retry had to use the next one.
    const attempts = stripe.intentCreations.filter((r) => r.idempotencyKey?.startsWith(`payment:${row!.id}`));
    expect(attempts.map((r) => r.idempotencyKey)).toEqual([`payment:${row!.id}`, `payment:${row!.id}:1`]);
  });

  it('gives up on a hanging Stripe within the timeout, and the retry completes', async () => {
    const key = newKey();
    stripe.setMode('hang', 1);
    const started = Date.now();
    const first = await create(user3, { idempotencyKey: key });
    expect(code(first)).toBe('PAYMENT_PROVIDER_UNAVAILABLE');
    expect(Date.now() - started).toBeLessThan(3000);
    const retry = await create(user3, { idempotencyKey: key });
    expect(retry.body.data!.createPayment.payment.status).toBe('PENDING');
    expect(retry.body.data!.createPayment.clientSecret).toBeTruthy();
  });

  it('marks a declined payment FAILED with the reason, and a retry changes nothing', async () => {
    const key = newKey();
    stripe.setMode('decline', 1);
    const r = await create(user3, { idempotencyKey: key });
    expect(r.body.errors).toBeUndefined();
    expect(r.body.data!.createPayment).toMatchObject({ clientSecret: null, payment: { status: 'FAILED', failureReason: 'Your card was declined.' } });
    const before = stripe.intentCreations.length;
    const again = await create(user3, { idempotencyKey: key });
    expect(again.body.data!.createPayment.payment).toMatchObject({ id: r.body.data!.createPayment.payment.id, status: 'FAILED' });
    expect(stripe.intentCreations.length).toBe(before);
  });

  it('completes a payment left behind by a crash between the insert and Stripe', async () => {
    const key = newKey();
    const [{ id }] = (await t.sql<{ id: number }>(
      `insert into payments (user_id, amount, currency, idempotency_key) values (2, 700, 'usd', ?) returning id`,
      [key],
    )) as [{ id: number }];
    const r = await create(user2, { idempotencyKey: key, amount: 700 });
    expect(r.body.data!.createPayment.payment).toMatchObject({ id: String(id), status: 'PENDING' });
    expect(r.body.data!.createPayment.payment.stripePaymentId).toMatch(/^pi_double_/);
  });

  it.each([
    [{ amount: 0 }],
    [{ amount: 100_000_000 }],
    [{ currency: 'xyz' }],
    [{ description: 'x'.repeat(501) }],
    [{ idempotencyKey: 'short' }],
    [{ idempotencyKey: 'has spaces in it' }],
  ])('refuses %j with BAD_USER_INPUT and writes nothing', async (bad) => {
    const before = await dbState();
    const calls = stripe.requests.length;
    const r = await create(user2, bad);
    expect(code(r)).toBe('BAD_USER_INPUT');
    expect(await dbState()).toEqual(before);
    expect(stripe.requests.length).toBe(calls);
  });
});

describe('the webhook', () => {
  /** A PENDING payment whose PaymentIntent exists (what createPayment leaves): the webhook takes it from there. */
  async function pendingPaymentWithIntent(token = user2, amount = 5000): Promise<{ id: string; intent: string }> {
    const r = await create(token, { amount });
    const { id, stripePaymentId } = r.body.data!.createPayment.payment;
    return { id, intent: stripePaymentId };
  }

  it('applies one event delivered 3 times in a row once', async () => {
    const { id, intent } = await pendingPaymentWithIntent();
    const event = intentEvent('payment_intent.succeeded', intent);
    const outcomes = [];
    for (let i = 0; i < 3; i++) outcomes.push((await deliver(event)).body.outcome);
    expect(outcomes).toEqual(['transitioned', 'duplicate', 'duplicate']);
    expect(await eventRows(event.id)).toEqual([{ id: event.id, outcome: 'transitioned' }]);
    expect((await t.sql<{ status: string }>('select status from payments where id = ?', [Number(id)]))[0]!.status).toBe('COMPLETED');
  });

  it('applies one event delivered 10 times concurrently once', async () => {
    const { intent } = await pendingPaymentWithIntent();
    const event = intentEvent('payment_intent.succeeded', intent);
    const results = await Promise.all(Array.from({ length: 10 }, () => deliver(event)));
    expect(results.every((r) => r.status === 200)).toBe(true);
    expect(results.filter((r) => r.body.outcome === 'transitioned')).toHaveLength(1);
    expect(results.filter((r) => r.body.outcome === 'duplicate')).toHaveLength(9);
    expect(await eventRows(event.id)).toHaveLength(1);
  });

  it('ends REFUNDED when the refund arrives before the success, and the late success changes nothing', async () => {
    const { id, intent } = await pendingPaymentWithIntent(user2, 3000);
    expect((await deliver(refundEvent(intent, 3000, 3000))).body.outcome).toBe('transitioned');
    expect((await deliver(intentEvent('payment_intent.succeeded', intent))).body.outcome).toBe('ignored_transition');
    expect((await deliver(intentEvent('payment_intent.payment_failed', intent))).body.outcome).toBe('ignored_transition');
    const [row] = await t.sql<{ status: string; amount_refunded: number }>('select status, amount_refunded from payments where id = ?', [Number(id)]);
    expect(row).toEqual({ status: 'REFUNDED', amount_refunded: 3000 });
  });

  it('never moves COMPLETED back to PENDING or FAILED; records partial refunds, then a full one', async () => {
    const { id, intent } = await pendingPaymentWithIntent(user2, 4000);
    await deliver(intentEvent('payment_intent.succeeded', intent));
    expect((await deliver(intentEvent('payment_intent.payment_failed', intent, { last_payment_error: { message: 'late' } }))).body.outcome).toBe('ignored_transition');
    expect((await deliver(refundEvent(intent, 4000, 1000))).body.outcome).toBe('refund_recorded');
    // A late, smaller refund total never lowers what was recorded.
    expect((await deliver(refundEvent(intent, 4000, 500))).body.outcome).toBe('unchanged');
    const partial = await t.gql(`{ payment(id: "${id}") { status amountRefunded } }`, { token: admin });
    expect(partial.body.data!.payment).toEqual({ status: 'COMPLETED', amountRefunded: 1000 });
    await deliver(refundEvent(intent, 4000, 4000));
    const full = await t.gql(`{ payment(id: "${id}") { status amountRefunded } }`, { token: admin });
    expect(full.body.data!.payment).toEqual({ status: 'REFUNDED', amountRefunded: 4000 });
  });

  it('records a payment_failed reason', async () => {
    const { id, intent } = await pendingPaymentWithIntent();
    await deliver(intentEvent('payment_intent.payment_failed', intent, { last_payment_error: { message: 'Insufficient funds.' } }));
    const r = await t.gql(`{ payment(id: "${id}") { status failureReason } }`, { token: admin });
    expect(r.body.data!.payment).toEqual({ status: 'FAILED', failureReason: 'Insufficient funds.' });
  });

  it('links an intent whose id was never stored, through metadata.paymentId', async () => {
    const [{ id }] = (await t.sql<{ id: number }>(`insert into payments (user_id, amount, currency) values (3, 900, 'usd') returning id`)) as [{ id: number }];
    const event = intentEvent('payment_intent.succeeded', 'pi_lost_123', { metadata: { paymentId: String(id) } });
    expect((await deliver(event)).body.outcome).toBe('transitioned');
    expect(await t.sql('select status, stripe_payment_id from payments where id = ?', [id])).toEqual([{ status: 'COMPLETED', stripe_payment_id: 'pi_lost_123' }]);
  });

  it('acknowledges and records an event for an unknown PaymentIntent, and ignores other types', async () => {
    const unknown = intentEvent('payment_intent.succeeded', 'pi_not_ours');
    expect(await deliver(unknown)).toEqual({ status: 200, body: { received: true, outcome: 'unknown_payment_intent' } });
    const other = signedEvent('customer.created', { id: 'cus_1', object: 'customer' });
    expect((await deliver(other)).body.outcome).toBe('ignored_type');
    expect(await eventRows(unknown.id)).toEqual([{ id: unknown.id, outcome: 'unknown_payment_intent' }]);
  });

  it('invalidates cached reads of the payment it changes', async () => {
    const { id, intent } = await pendingPaymentWithIntent();
    const read = () => t.gql(`{ payment(id: "${id}") { status } }`, { token: admin });
    await read();
    expect((await read()).statements).toBe(0);
    await deliver(intentEvent('payment_intent.succeeded', intent));
    const after = await read();
    expect(after.body.data!.payment.status).toBe('COMPLETED');
  });

  describe('rejects with 400 and writes nothing', () => {
    let intent: string;
    beforeAll(async () => {
      intent = (await pendingPaymentWithIntent()).intent;
    });
    const cases: [string, () => { payload: string; signature?: string }][] = [
      ['a missing signature', () => ({ payload: intentEvent('payment_intent.succeeded', intent).payload })],
      ['a garbled signature', () => ({ ...intentEvent('payment_intent.succeeded', intent), signature: 't=1,v1=deadbeef' })],
      ['a signature made with another secret', () => signedEvent('payment_intent.succeeded', { id: intent, object: 'payment_intent' }, { secret: 'whsec_wrong' })],
      ['a timestamp older than 300 s', () => signedEvent('payment_intent.succeeded', { id: intent, object: 'payment_intent' }, { timestamp: Math.floor(Date.now() / 1000) - 301 })],
      ['a body changed after signing', () => {
        const e = intentEvent('payment_intent.succeeded', intent);
        return { payload: e.payload.replace('payment_intent.succeeded', 'payment_intent.canceled'), signature: e.signature };
      }],
      ['a signed body that is not JSON', () => {
        const payload = '{"id": "evt_broken", "type": ';
        return { payload, signature: Stripe.webhooks.generateTestHeaderString({ payload, secret: WEBHOOK_SECRET }) };
      }],
    ];
    it.each(cases)('%s', async (_name, make) => {
      const before = { payments: await dbState(), events: await eventRows() };
      const r = await deliver(make());
      expect(r.status).toBe(400);
      expect({ payments: await dbState(), events: await eventRows() }).toEqual(before);
    });
  });
});

describe('createPayment retried while the customer can still act', () => {
  it('hands the client secret out again for REQUIRES_ACTION (3-D Secure), and never once the payment is settled', async () => {
    const key = newKey();
    const first = await create(user2, { idempotencyKey: key });
    const { id, stripePaymentId } = first.body.data!.createPayment.payment;
    const secret = first.body.data!.createPayment.clientSecret;
    expect(secret).toMatch(/_secret_/);
    // The customer is asked for 3-D Secure, and the client loses the first answer: it retries the key.
    stripe.setIntentStatus(stripePaymentId, 'requires_action');
    expect((await deliver(intentEvent('payment_intent.requires_action', stripePaymentId))).body.outcome).toBe('transitioned');
    const retried = await create(user2, { idempotencyKey: key });
    expect(retried.body.errors).toBeUndefined();
    expect(retried.body.data!.createPayment.payment).toMatchObject({ id, status: 'REQUIRES_ACTION' });
    expect(retried.body.data!.createPayment.clientSecret).toBe(secret);
    // Paid: a retry gets the payment, and no secret to act on.
    stripe.succeed(stripePaymentId);
    await deliver(intentEvent('payment_intent.succeeded', stripePaymentId));
    const after = await create(user2, { idempotencyKey: key });
    expect(after.body.data!.createPayment).toMatchObject({ payment: { id, status: 'COMPLETED' }, clientSecret: null });
  });
});

describe('cancelPayment and refundPayment', () => {
  it("lets the owner cancel a PENDING payment at Stripe; the webhook makes it CANCELED; others get NOT_FOUND", async () => {
    const r = await create(user2);
    const { id, stripePaymentId } = r.body.data!.createPayment.payment;
    expect(code(await t.gql(`mutation { cancelPayment(id: "${id}") { id } }`, { token: user3 }))).toBe('NOT_FOUND');
    const canceled = await t.gql(`mutation { cancelPayment(id: "${id}") { id status } }`, { token: user2 });
    expect(canceled.body.errors).toBeUndefined();
    const call = stripe.requests.find((q) => q.path === `/v1/payment_intents/${stripePaymentId}/cancel`);
    expect(call).toMatchObject({ method: 'POST', idempotencyKey: expect.stringMatching(new RegExp(`^cancel:${id}:[0-9a-f-]{36}$`)) });
    await deliver(intentEvent('payment_intent.canceled', stripePaymentId));
    const after = await t.gql(`{ payment(id: "${id}") { status } }`, { token: user2 });
    expect(after.body.data!.payment.status).toBe('CANCELED');
    expect(code(await t.gql(`mutation { cancelPayment(id: "${id}") { id } }`, { token: user2 }))).toBe('CONFLICT');
  });

  it('cancels at once a payment Stripe never heard of', async () => {
    const [{ id }] = (await t.sql<{ id: number }>(`insert into payments (user_id, amount, currency) values (2, 300, 'usd') returning id`)) as [{ id: number }];
    const r = await t.gql(`mutation { cancelPayment(id: "${id}") { status } }`, { token: admin });
    expect(r.body.data!.cancelPayment.status).toBe('CANCELED');
  });

  it('cancels a REQUIRES_ACTION payment with no intent (set so by hand) instead of asking itself again for ever', async () => {
    // Before: the cancel of an unlinked payment matched PENDING only, and its caller took "not
    // canceled" for a race and started over, in the same request, with no end.
    const [{ id }] = (await t.sql<{ id: number }>(`insert into payments (user_id, amount, currency, status) values (2, 300, 'usd', 'REQUIRES_ACTION') returning id`)) as [{ id: number }];
    const r = await t.gql(`mutation { cancelPayment(id: "${id}") { status } }`, { token: admin });
    expect(r.body.errors).toBeUndefined();
    expect(r.body.data!.cancelPayment.status).toBe('CANCELED');
    expect(await t.sql('select action, before, after from audit_log where entity_type = ? and entity_id = ?', ['PAYMENT', id])).toEqual([
      { action: 'status_changed', before: { status: 'REQUIRES_ACTION' }, after: { status: 'CANCELED' } },
    ]);
  });

  it('lets only an ADMIN refund, only a COMPLETED payment, and no more than is left', async () => {
    const created = await create(user2, { amount: 8000 });
    const { id, stripePaymentId } = created.body.data!.createPayment.payment;
    expect(code(await t.gql(`mutation { refundPayment(id: "${id}") { id } }`, { token: admin }))).toBe('CONFLICT');
    stripe.succeed(stripePaymentId);
    await deliver(intentEvent('payment_intent.succeeded', stripePaymentId));

    expect(code(await t.gql(`mutation { refundPayment(id: "${id}") { id } }`, { token: user2 }))).toBe('FORBIDDEN');
    expect(code(await t.gql(`mutation { refundPayment(id: "${id}", amount: 8001) { id } }`, { token: admin }))).toBe('BAD_USER_INPUT');
    const partial = await t.gql(`mutation { refundPayment(id: "${id}", amount: 2000, idempotencyKey: "refund-once-1") { id status } }`, { token: admin });
    expect(partial.body.errors).toBeUndefined();
    // A retried refund request with the same key reaches Stripe with the same Idempotency-Key.
    await t.gql(`mutation { refundPayment(id: "${id}", amount: 2000, idempotencyKey: "refund-once-1") { id } }`, { token: admin });
    const refunds = stripe.requests.filter((q) => q.path === '/v1/refunds' && q.form.payment_intent === stripePaymentId);
    expect(refunds).toHaveLength(2);
    expect(new Set(refunds.map((q) => q.idempotencyKey))).toEqual(new Set([`refund:${id}:refund-once-1`]));
    expect(refunds[0]!.form).toMatchObject({ amount: '2000', 'metadata[paymentId]': id });
    // The cancel of a succeeded intent is refused by Stripe, and says so.
    expect(code(await t.gql(`mutation { cancelPayment(id: "${id}") { id } }`, { token: admin }))).toBe('CONFLICT');
  });

  /** A COMPLETED payment with a charge at the double, to refund. */
  async function completedPayment(amount: number): Promise<{ id: string; intentId: string }> {
    const created = await create(user2, { amount });
    const { id, stripePaymentId } = created.body.data!.createPayment.payment;
    stripe.succeed(stripePaymentId);
    await deliver(intentEvent('payment_intent.succeeded', stripePaymentId));
    return { id, intentId: stripePaymentId };
  }
  const refundsOf = (intentId: string) => [...stripe.refunds.values()].filter((r) => r.payment_intent === intentId);

  it('a refund retried after a Stripe 500 is made, once: the retry asks Stripe first, then sends it under a new key', async () => {
    const { id, intentId } = await completedPayment(5000);
    const refund = `mutation { refundPayment(id: "${id}", amount: 1500, idempotencyKey: "after-500") { id } }`;
    stripe.setMode('error500', 1);
    expect(code(await t.gql(refund, { token: admin }))).toBe('PAYMENT_PROVIDER_UNAVAILABLE');
    expect(refundsOf(intentId)).toHaveLength(0);
    // Stripe would replay that 500 for the same key forever: the retry lists the refunds, finds none, and uses a new key.
    const retried = await t.gql(refund, { token: admin });
    expect(retried.body.errors).toBeUndefined();
    expect(refundsOf(intentId).map((r) => r.amount)).toEqual([1500]);
    const sent = stripe.requests.filter((q) => q.path === '/v1/refunds' && (q.form.payment_intent ?? q.query.payment_intent) === intentId);
    expect(sent.map((q) => `${q.method} ${q.idempotencyKey ?? ''}`)).toEqual([`POST refund:${id}:after-500`, 'GET ', `POST refund:${id}:after-500:1`]);
    expect(stripe.charges.get(intentId)!.amount_refunded).toBe(1500);
  });

  it('a refund Stripe made but answered with a 500 is found on the retry and never made twice', async () => {
    const { id, intentId } = await completedPayment(5000);
    const refund = `mutation { refundPayment(id: "${id}", amount: 700, idempotencyKey: "made-then-500") { id } }`;
    stripe.setMode('error500AfterEffect', 1);
    expect(code(await t.gql(refund, { token: admin }))).toBe('PAYMENT_PROVIDER_UNAVAILABLE');
    expect(refundsOf(intentId)).toHaveLength(1);
    const retried = await t.gql(refund, { token: admin });
    expect(retried.body.errors).toBeUndefined();
    expect(refundsOf(intentId).map((r) => r.amount)).toEqual([700]);
    expect(stripe.charges.get(intentId)!.amount_refunded).toBe(700);
    // Just under: with no 500 before it, a refund is sent once, under the request's own key, with no list.
    const { id: other, intentId: otherIntent } = await completedPayment(3000);
    const before = stripe.requests.length;
    expect((await t.gql(`mutation { refundPayment(id: "${other}", amount: 300, idempotencyKey: "plain-key") { id } }`, { token: admin })).body.errors).toBeUndefined();
    expect(stripe.requests.slice(before).map((q) => `${q.method} ${q.path}`)).toEqual(['POST /v1/refunds']);
    expect(refundsOf(otherIntent)).toHaveLength(1);
  });

  it('two refunds of one amount, the first still in flight, are two refunds: each key starts where the refunds asked for end', async () => {
    const { id, intentId } = await completedPayment(5000);
    for (let n = 0; n < 2; n++) expect((await t.gql(`mutation { refundPayment(id: "${id}", amount: 1000) { id } }`, { token: admin })).body.errors).toBeUndefined();
    expect(refundsOf(intentId).map((r) => [r.amount, r.metadata.refundKey])).toEqual([
      [1000, `refund:${id}:0:1000`],
      [1000, `refund:${id}:1000:1000`],
    ]);
    expect(await t.sql('select refund_requested_total from payments where id = ?', [Number(id)])).toEqual([{ refund_requested_total: 2000 }]);
    // What is left counts the refunds in flight: 3,000, not 5,000.
    const over = await t.gql(`mutation { refundPayment(id: "${id}", amount: 3001) { id } }`, { token: admin });
    expect(code(over)).toBe('BAD_USER_INPUT');
    expect(over.body.errors![0]!.message).toBe('amount must be an integer from 1 to 3000 (what is left to refund, refunds in flight included)');
  });

  it('a cancel retried after a Stripe 500 goes through (each call its own key: canceling twice is harmless)', async () => {
    const r = await create(user2);
    const { id, stripePaymentId } = r.body.data!.createPayment.payment;
    stripe.setMode('error500', 1);
    expect(code(await t.gql(`mutation { cancelPayment(id: "${id}") { id } }`, { token: user2 }))).toBe('PAYMENT_PROVIDER_UNAVAILABLE');
    expect(stripe.intents.get(stripePaymentId)!.status).toBe('requires_payment_method');
    expect((await t.gql(`mutation { cancelPayment(id: "${id}") { id } }`, { token: user2 })).body.errors).toBeUndefined();
    expect(stripe.intents.get(stripePaymentId)!.status).toBe('canceled');
  });
});

describe('card-testing protection (PAYMENT_ATTEMPTS_*)', () => {
  let p: TestApp;
  beforeAll(async () => {
    p = await createTestApp({
      seed: { users: 4, paymentsPerUser: 0 },
      env: stripeEnvFor(stripe, { PAYMENT_ATTEMPTS_PER_MINUTE: '4', PAYMENT_ATTEMPTS_MAX_FAILURES: '2', PAYMENT_ATTEMPTS_FAILURE_WINDOW_SECONDS: '3600' }),
    });
  });
  afterAll(async () => p?.close());

  const createOn = (token: string, idempotencyKey = newKey()) =>
    p.gql(CREATE, { token, variables: { input: { amount: 2500, currency: 'usd', idempotencyKey } } });
  const refusals = (userId: number) =>
    p.sql<{ after: { reason: string; retryAfterSeconds: number; amount: number }; actor_id: number; request_id: string }>(
      `select after, actor_id, request_id from audit_log where entity_type = 'USER' and entity_id = ? and action = 'payment_refused' order by id`,
      [userId],
    );

  it('4 new payments a minute per user pass; the 5th is refused and audited, creates nothing, and a retry of an existing one is still answered', async () => {
    const token = await p.userToken(2);
    const keys = [newKey(), newKey(), newKey(), newKey()];
    const made = [];
    for (const key of keys) {
      const r = await createOn(token, key);
      expect(r.body.errors).toBeUndefined();
      made.push(r.body.data!.createPayment.payment.id);
    }
    const rows = (await p.sql('select count(*)::int as n from payments where user_id = 2'))[0] as { n: number };
    const fifth = await createOn(token);
    expect(fifth.body.errors![0]!.message).toMatch(/^At most 4 new payments per minute; retry in 15 s$/);
    expect(fifth.body.errors![0]!.extensions).toMatchObject({ code: 'PAYMENT_ATTEMPTS_EXCEEDED', reason: 'attempts' });
    expect(await p.sql('select count(*)::int as n from payments where user_id = 2')).toEqual([rows]);
    const audited = await refusals(2);
    expect(audited).toHaveLength(1);
    expect(audited[0]!.after).toMatchObject({ reason: 'attempts', amount: 2500 });
    expect(audited[0]!.actor_id).toBe(2);
    // Another user has a budget of their own.
    expect((await createOn(await p.userToken(4))).body.errors).toBeUndefined();
    // A network retry of a payment that was made is not a new attempt: the same payment comes back.
    const retried = await createOn(token, keys[3]);
    expect(retried.body.errors).toBeUndefined();
    expect(retried.body.data!.createPayment.payment.id).toBe(made[3]);
  });

  it('after 2 FAILED payments within the window a user\'s new payments are refused and audited; after 1 they still pass', async () => {
    const token = await p.userToken(3);
    stripe.setMode('decline', 1);
    const firstDecline = await createOn(token);
    expect(firstDecline.body.data!.createPayment.payment.status).toBe('FAILED');
    // Just under the rule: one failure, a new payment is still accepted (and declined again).
    stripe.setMode('decline', 1);
    const secondKey = newKey();
    const second = await createOn(token, secondKey);
    expect(second.body.errors).toBeUndefined();
    expect(second.body.data!.createPayment.payment.status).toBe('FAILED');
    const intentsBefore = stripe.intentCreations.length;
    const refused = await createOn(token);
    expect(refused.body.errors![0]!.extensions).toMatchObject({ code: 'PAYMENT_ATTEMPTS_EXCEEDED', reason: 'failures' });
    const wait = refused.body.errors![0]!.extensions!.retryAfterSeconds as number;
    expect(wait).toBeGreaterThan(3590);
    expect(wait).toBeLessThanOrEqual(3600);
    expect(refused.body.errors![0]!.message).toBe(`New payments are refused for now: 2 or more payments failed within 3600 s; retry in ${wait} s`);
    expect(stripe.intentCreations.length).toBe(intentsBefore);
    expect(await p.sql(`select count(*)::int as n from payments where user_id = 3`)).toEqual([{ n: 2 }]);
    expect((await refusals(3)).map((r) => r.after.reason)).toEqual(['failures']);
    // The failed payment itself is still answered to a retry of its key.
    const again = await createOn(token, secondKey);
    expect(again.body.data!.createPayment.payment).toMatchObject({ id: second.body.data!.createPayment.payment.id, status: 'FAILED' });
    // Once the failures are older than the window, payments are accepted again (the 4th attempt this minute).
    await p.sql(`update payments set created_at = now() - interval '2 hours' where user_id = 3`);
    const later = await createOn(token);
    expect(later.body.errors).toBeUndefined();
    expect(later.body.data!.createPayment.payment.status).toBe('PENDING');
  });
});

describe('without STRIPE_SECRET_KEY', () => {
  let bare: TestApp;
  beforeAll(async () => {
    bare = await createTestApp({ seed: { users: 2, paymentsPerUser: 1 } });
  });
  afterAll(async () => bare?.close());

  it('answers payment mutations with PAYMENTS_NOT_CONFIGURED, and the rest keeps working', async () => {
    const token = await bare.userToken(2);
    const r = await bare.gql(CREATE, { token, variables: { input: { amount: 100, currency: 'usd', idempotencyKey: 'abcdefgh' } } });
    expect(code(r)).toBe('PAYMENTS_NOT_CONFIGURED');
    expect(r.body.errors![0]!.message).toMatch(/STRIPE_SECRET_KEY/);
    expect((await bare.gql('{ paymentHistory { totalCount } }', { token })).body.data!.paymentHistory.totalCount).toBe(1);
    const hook = await bare.app.fastify.inject({ method: 'POST', url: '/webhooks/stripe', headers: { 'content-type': 'application/json', 'stripe-signature': 'x' }, payload: '{}' });
    expect(hook.statusCode).toBe(503);
  });
});

describe('with SDK network retries on (STRIPE_MAX_NETWORK_RETRIES=1)', () => {
  // A Stripe account of its own: idempotency keys (`payment:<id>`) are per account, and this app's
  // payment ids start again at 1.
  let own: StripeDouble;
  let retrying: TestApp;
  beforeAll(async () => {
    own = await StripeDouble.start();
    retrying = await createTestApp({
      seed: { users: 2, paymentsPerUser: 0 },
      env: { STRIPE_SECRET_KEY: DOUBLE_SECRET_KEY, STRIPE_API_BASE: own.url, STRIPE_MAX_NETWORK_RETRIES: '1', STRIPE_TIMEOUT_MS: '2000' },
    });
  });
  afterAll(async () => {
    await retrying?.close();
    await own?.close();
  });

  it('retries a lock timeout (503, Stripe-Should-Retry) by itself with the same Idempotency-Key, and one intent results', async () => {
    own.setMode('retryable503', 1);
    const r = await retrying.gql(CREATE, { token: await retrying.userToken(2), variables: { input: { amount: 1234, currency: 'gbp', idempotencyKey: newKey() } } });
    expect(r.body.errors).toBeUndefined();
    const { id } = r.body.data!.createPayment.payment;
    const attempts = own.intentCreations;
    expect(attempts.map((a) => a.idempotencyKey)).toEqual([`payment:${id}`, `payment:${id}`]);
    expect(r.body.data!.createPayment.clientSecret).toBeTruthy();
    expect(own.intents.size).toBe(1);
  });
});
