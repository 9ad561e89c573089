import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { expectAlive, expectAnsweredAndCoded, loadTokens, prepareDatabase, reportFault, sleep, startLoad, startProductionServer, type LoadTokens } from '../helpers/faults.js';
import type { ServerProcess } from '../helpers/server-process.js';
import { signedEvent, stripeEnvFor, StripeDouble } from '../helpers/stripe-double.js';

const redisUrl = inject('redisUrl');

/**
 * Stripe misbehaving under a production server: answering later than STRIPE_TIMEOUT_MS (having done
 * the work), then with 500s, while a second process creates payments (each under its own key,
 * retried until the server says what became of it) and the test refunds completed ones (each refund
 * retried under its key). Whatever was retried: one PaymentIntent per payment, one payment per key,
 * one refund per refund key; every request answered, coded while Stripe fails; the process lives.
 */
describe.skipIf(!redisUrl)('Stripe faults under load', () => {
  let db: TestDatabase;
  let stripe: StripeDouble;
  let server: ServerProcess;
  let tokens: LoadTokens;

  beforeAll(async () => {
    db = await createTestDatabase();
    await prepareDatabase(db.url, { users: 20, paymentsPerUser: 0 });
    tokens = await loadTokens(8);
    stripe = await StripeDouble.start();
    const { STRIPE_MAX_NETWORK_RETRIES: _noRetries, ...env } = stripeEnvFor(stripe);
    // Production's SDK retries (STRIPE_MAX_NETWORK_RETRIES default), a short timeout so that slow is slow.
    server = await startProductionServer({ ...env, DATABASE_URL: db.url, REDIS_URL: redisUrl, CACHE_NAMESPACE: db.name, STRIPE_TIMEOUT_MS: '500', PAYMENT_ATTEMPTS_PER_MINUTE: '100000' }); // the load creates payments faster than card-testing protection allows one user
  });
  afterAll(async () => {
    await server?.stop();
    await stripe?.close();
    await db?.drop();
  });

  const gql = async (query: string, token: string) => {
    const res = await fetch(server.url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ query }) });
    return (await res.json()) as { data?: Record<string, any> | null; errors?: { extensions?: { code?: string } }[] };
  };

  /** A COMPLETED payment with a charge at the double (created through the API, paid, its webhook delivered). */
  async function completedPayment(n: number): Promise<{ id: string; intentId: string }> {
    const created = await gql(`mutation { createPayment(input: { amount: 5000, currency: "usd", idempotencyKey: "to-refund-${n}" }) { payment { id stripePaymentId } } }`, tokens.users[0]!.token);
    const { id, stripePaymentId } = created.data!.createPayment.payment;
    stripe.succeed(stripePaymentId);
    const delivery = signedEvent('payment_intent.succeeded', { id: stripePaymentId, object: 'payment_intent' });
    const hook = await fetch(`${server.url.replace(/\/graphql$/, '')}/webhooks/stripe`, { method: 'POST', headers: { 'content-type': 'application/json', 'stripe-signature': delivery.signature }, body: delivery.payload });
    expect(hook.status).toBe(200);
    return { id, intentId: stripePaymentId };
  }

  /** One refund, retried under its key while the provider is unavailable (as a client should). */
  async function refundUntilDone(id: string): Promise<number> {
    for (let attempt = 1; attempt <= 30; attempt++) {
      const r = await gql(`mutation { refundPayment(id: "${id}", amount: 1000, idempotencyKey: "fault-refund-${id}") { id } }`, tokens.admin);
      if (!r.errors) return attempt;
      expect(r.errors.map((e) => e.extensions?.code)).toEqual(['PAYMENT_PROVIDER_UNAVAILABLE']);
      await sleep(300);
    }
    throw new Error(`refund of ${id} never went through`);
  }

  it('slow (past STRIPE_TIMEOUT_MS), then 500s: one intent per payment, one payment per key, one refund per refund key', { timeout: 90_000 }, async () => {
    const toRefund = await Promise.all([0, 1, 2, 3, 4, 5].map(completedPayment));
    const load = startLoad({ url: server.url, scenario: 'createPayments', durationMs: 11_000, concurrency: 6, tokens });
    await sleep(1500);
    stripe.slowMs = 1200;
    stripe.setMode('slow');
    const slowRefunds = Promise.all(toRefund.slice(0, 3).map((p) => refundUntilDone(p.id)));
    await sleep(3000);
    stripe.setMode('error500');
    const failingRefunds = Promise.all(toRefund.slice(3).map((p) => refundUntilDone(p.id)));
    await sleep(3000);
    stripe.setMode('success');
    const attempts = [...(await slowRefunds), ...(await failingRefunds)];
    const report = await load;

    reportFault(`Stripe slow, then 500s (${report.payments.length} payments created; refunds took ${attempts.join('/')} tries)`, report);
    expectAnsweredAndCoded(report, ['PAYMENT_PROVIDER_UNAVAILABLE']);
    // The faults were real: some creations and the refunds in the 500s had to be retried.
    expect(report.byCode.PAYMENT_PROVIDER_UNAVAILABLE).toBeGreaterThan(0);
    expect(Math.max(...attempts.slice(3))).toBeGreaterThan(1);
    expect(report.payments.length).toBeGreaterThan(6);
    expect(report.payments.some((p) => p.attempts > 1)).toBe(true);

    // One payment per client key, each with one PaymentIntent at Stripe, the one it is linked to.
    const rows = await db.query<{ id: number; idempotency_key: string; stripe_payment_id: string | null }>(
      "select id, idempotency_key, stripe_payment_id from payments where idempotency_key like 'fault-%' order by id",
    );
    expect(rows.map((r) => r.idempotency_key).sort()).toEqual(report.payments.map((p) => p.key).sort());
    const intentsByPayment = new Map<string, string[]>();
    for (const intent of stripe.intents.values()) {
      const paymentId = (intent.metadata as Record<string, string>).paymentId!;
      intentsByPayment.set(paymentId, [...(intentsByPayment.get(paymentId) ?? []), intent.id as string]);
    }
    for (const row of rows) expect(intentsByPayment.get(String(row.id))).toEqual([row.stripe_payment_id]);

    // Each refund made once: one refund at Stripe per refund key, and 1000 refunded of each charge.
    for (const { id, intentId } of toRefund) {
      expect([...stripe.refunds.values()].filter((r) => r.metadata.refundKey === `refund:${id}:fault-refund-${id}`)).toHaveLength(1);
      expect(stripe.charges.get(intentId)!.amount_refunded).toBe(1000);
    }
    await expectAlive(server);
  });
});
