import { spawn } from 'node:child_process';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/test-app.js';
import { DOUBLE_SECRET_KEY, signedEvent, stripeEnvFor, StripeDouble } from '../helpers/stripe-double.js';
import { projectRoot } from '../helpers/server-process.js';
import { createApp } from '../../src/app.js';
import { createTestDatabase } from '../helpers/database.js';
import { loadTokens, prepareDatabase, startProductionServer } from '../helpers/faults.js';

/**
 * Payments always settle: a payment whose webhook never comes is settled by reconciliation, which asks
 * Stripe (the real SDK against the local double) and applies the same status machine, recorded in the
 * audit log; the late webhook then changes nothing; two instances never settle a payment twice; Stripe
 * failing leaves everything for the next run.
 */
let stripe: StripeDouble;
let t: TestApp;
let admin: string;
let user2: string;
let keySeq = 0;

beforeAll(async () => {
  stripe = await StripeDouble.start();
  t = await createTestApp({
    seed: { users: 4, paymentsPerUser: 0 },
    env: stripeEnvFor(stripe, {
      STRIPE_TIMEOUT_MS: '2000',
      CACHE_ENABLED: 'true',
      // Runs are started by the tests; the in-process job would race them.
      RECONCILE_INTERVAL_SECONDS: '0',
      RECONCILE_AFTER_SECONDS: '60',
      RECONCILE_MIN_CALL_INTERVAL_MS: '0',
    }),
  });
  admin = await t.adminToken();
  user2 = await t.userToken(2);
});
afterAll(async () => {
  await t?.close();
  await stripe?.close();
});
beforeEach(() => {
  stripe.setMode('success');
  stripe.readMode = 'success';
  stripe.readDelayMs = 0;
});

async function createPayment(amount = 2500): Promise<{ id: string; intent: string }> {
  const r = await t.gql(
    'mutation($input: CreatePaymentInput!) { createPayment(input: $input) { payment { id stripePaymentId } } }',
    { token: user2, variables: { input: { amount, currency: 'usd', idempotencyKey: `rec-${Date.now()}-${++keySeq}` } } },
  );
  expect(r.body.errors).toBeUndefined();
  const { id, stripePaymentId } = r.body.data!.createPayment.payment;
  return { id, intent: stripePaymentId };
}

/** As if `seconds` had passed since the payment (and any refund asked for it, and its last check) last changed. */
async function age(id: string, seconds = 600): Promise<void> {
  await t.sql(
    `update payments set updated_at = now() - make_interval(secs => ?), refund_requested_at = refund_requested_at - make_interval(secs => ?),
     reconcile_due_at = reconcile_due_at - make_interval(secs => ?) where id = ?`,
    [seconds, seconds, seconds, Number(id)],
  );
}

async function status(id: string): Promise<{ status: string; amountRefunded: number }> {
  const r = await t.gql(`{ payment(id: "${id}") { status amountRefunded } }`, { token: admin });
  return r.body.data!.payment;
}

async function auditOf(id: string) {
  return t.sql<{ actor_type: string; action: string; before: unknown; after: unknown; request_id: string | null }>(
    `select actor_type, action, before, after, request_id from audit_log where entity_type = 'PAYMENT' and entity_id = ? order by id`,
    [Number(id)],
  );
}

async function deliver(event: { payload: string; signature: string }) {
  const res = await t.app.fastify.inject({
    method: 'POST',
    url: '/webhooks/stripe',
    headers: { 'content-type': 'application/json', 'stripe-signature': event.signature },
    payload: event.payload,
  });
  return res.json() as { outcome: string };
}

const intentEvent = (type: string, intentId: string, extra: Record<string, unknown> = {}) =>
  signedEvent(type, { id: intentId, object: 'payment_intent', ...extra });
const reads = (intent: string) => stripe.requests.filter((r) => r.method === 'GET' && r.path === `/v1/payment_intents/${intent}`).length;
const reconcile = () => t.app.reconciler!.runOnce();

describe('reconciliation', () => {
  it('settles a payment whose webhook never came, with an audit entry; the late webhook then changes nothing', async () => {
    const { id, intent } = await createPayment();
    expect(await status(id)).toEqual({ status: 'PENDING', amountRefunded: 0 }); // now cached
    stripe.succeed(intent);
    await age(id);

    const report = await reconcile();
    expect(report).toMatchObject({ skipped: false, failed: 0, rateLimited: false });
    expect(report.changed).toBeGreaterThanOrEqual(1);
    expect(await status(id)).toEqual({ status: 'COMPLETED', amountRefunded: 0 }); // the cache entry was invalidated
    const entries = await auditOf(id);
    expect(entries.at(-1)).toEqual({
      actor_type: 'RECONCILER',
      action: 'status_changed',
      before: { status: 'PENDING' },
      after: { status: 'COMPLETED' },
      request_id: report.runId,
    });

    const late = await deliver(intentEvent('payment_intent.succeeded', intent));
    expect(late.outcome).toBe('ignored_transition');
    expect(await auditOf(id)).toEqual(entries);
    expect(await status(id)).toEqual({ status: 'COMPLETED', amountRefunded: 0 });
  });

  it('asks Stripe nothing about a payment that changed less than RECONCILE_AFTER_SECONDS ago', async () => {
    const { id, intent } = await createPayment();
    stripe.succeed(intent);
    await age(id, 30);
    await reconcile();
    expect(reads(intent)).toBe(0);
    expect((await status(id)).status).toBe('PENDING');
  });

  it('settles once when reconciliation and the late webhook arrive at the same moment', async () => {
    const { id, intent } = await createPayment();
    stripe.succeed(intent);
    await age(id);
    const [, webhook] = await Promise.all([reconcile(), deliver(intentEvent('payment_intent.succeeded', intent))]);
    expect(['transitioned', 'ignored_transition']).toContain(webhook.outcome);
    const transitions = (await auditOf(id)).filter((e) => e.action === 'status_changed');
    expect(transitions).toHaveLength(1);
    expect(transitions[0]!.after).toEqual({ status: 'COMPLETED' });
    expect((await status(id)).status).toBe('COMPLETED');
  });

  it('two instances reconciling at the same moment: one runs, the other skips, and each payment is settled once', async () => {
    const created = [await createPayment(), await createPayment(), await createPayment()];
    for (const { id, intent } of created) {
      stripe.succeed(intent);
      await age(id);
    }
    const other = await createApp(t.config);
    try {
      stripe.readDelayMs = 150; // the first run is still going when the second starts
      const reports = await Promise.all([reconcile(), other.reconciler!.runOnce()]);
      expect(reports.filter((r) => r.skipped)).toHaveLength(1);
      expect(reports.find((r) => !r.skipped)!.checked).toBeGreaterThanOrEqual(3);
      for (const { id, intent } of created) {
        expect(reads(intent)).toBe(1);
        expect((await auditOf(id)).filter((e) => e.action === 'status_changed')).toHaveLength(1);
        expect((await status(id)).status).toBe('COMPLETED');
      }
    } finally {
      await other.close();
    }
  });

  it('leaves everything as it was when Stripe fails during a run, and the next run settles it', async () => {
    const { id, intent } = await createPayment();
    stripe.succeed(intent);
    await age(id);
    stripe.readMode = 'error500';
    const failing = await reconcile();
    expect(failing.failed).toBeGreaterThanOrEqual(1);
    expect(failing.changed).toBe(0);
    expect((await status(id)).status).toBe('PENDING');
    expect((await auditOf(id)).filter((e) => e.actor_type === 'RECONCILER')).toEqual([]);

    stripe.readMode = 'success';
    const next = await reconcile();
    expect(next.failed).toBe(0);
    expect((await status(id)).status).toBe('COMPLETED');
  });

  it('ends a run when Stripe says to slow down (429), leaving the rest for the next run', async () => {
    const first = await createPayment();
    const second = await createPayment();
    for (const { id, intent } of [first, second]) {
      stripe.succeed(intent);
      await age(id);
    }
    stripe.readMode = 'rateLimited';
    const limited = await reconcile();
    expect(limited).toMatchObject({ rateLimited: true, checked: 1, failed: 1, changed: 0 });
    stripe.readMode = 'success';
    await reconcile();
    for (const { id } of [first, second]) expect((await status(id)).status).toBe('COMPLETED');
  });

  it('does bounded work per run: RECONCILE_BATCH_SIZE payments, the oldest first', async () => {
    const created = [await createPayment(), await createPayment(), await createPayment()];
    for (const [n, { id, intent }] of created.entries()) {
      stripe.succeed(intent);
      await age(id, 3600 - n * 60);
    }
    const small = await createApp({ ...t.config, reconcile: { ...t.config.reconcile, batchSize: 2 } });
    // Read from the database: this second instance's cache is its own memory store (sharing needs Redis).
    const statuses = async () => (await t.sql<{ status: string }>(`select status from payments where id in (${created.map((c) => Number(c.id)).join(', ')}) order by id`)).map((r) => r.status);
    try {
      expect(await small.reconciler!.runOnce()).toMatchObject({ checked: 2, changed: 2 });
      expect(await statuses()).toEqual(['COMPLETED', 'COMPLETED', 'PENDING']);
      expect(await small.reconciler!.runOnce()).toMatchObject({ checked: 1, changed: 1 });
      expect(await statuses()).toEqual(['COMPLETED', 'COMPLETED', 'COMPLETED']);
    } finally {
      await small.close();
    }
  });

  it('settles a refund whose webhook never came, and then no longer counts it in flight', async () => {
    const { id, intent } = await createPayment(4000);
    stripe.succeed(intent);
    expect((await deliver(intentEvent('payment_intent.succeeded', intent))).outcome).toBe('transitioned');
    const refund = await t.gql(`mutation { refundPayment(id: "${id}", amount: 1500) { id amountRefunded } }`, { token: admin });
    expect(refund.body.errors).toBeUndefined();
    expect(await t.sql('select refund_requested_total, amount_refunded from payments where id = ?', [Number(id)])).toEqual([
      { refund_requested_total: 1500, amount_refunded: 0 },
    ]);
    await age(id);
    await reconcile();
    expect(await status(id)).toEqual({ status: 'COMPLETED', amountRefunded: 1500 });
    expect(await t.sql('select refund_requested_total, amount_refunded from payments where id = ?', [Number(id)])).toEqual([
      { refund_requested_total: 1500, amount_refunded: 1500 },
    ]);
    const entries = await auditOf(id);
    expect(entries.map((e) => [e.actor_type, e.action])).toEqual([
      ['USER', 'create'],
      ['USER', 'intent_created'],
      ['STRIPE', 'status_changed'],
      ['USER', 'refund_requested'],
      ['RECONCILER', 'refund_recorded'],
    ]);
    // The webhook of that refund, late: nothing moves.
    const late = signedEvent('charge.refunded', { id: `ch_${intent}`, object: 'charge', payment_intent: intent, amount: 4000, amount_refunded: 1500, refunded: false });
    expect((await deliver(late)).outcome).toBe('unchanged');
    expect(await auditOf(id)).toHaveLength(entries.length);
  });

  it('reaches a lost webhook behind more abandoned payments than a batch: each payment asked about goes to the back of the line', async () => {
    // Five payments nobody pays (their intents wait for a payment method), older than the one whose
    // webhook was lost, and a batch of three.
    const abandoned = [];
    for (let n = 0; n < 5; n++) {
      const p = await createPayment();
      await age(p.id, 7200 - n * 60);
      abandoned.push(p);
    }
    const lost = await createPayment();
    stripe.succeed(lost.intent);
    await age(lost.id, 3600);
    const small = await createApp({ ...t.config, reconcile: { ...t.config.reconcile, batchSize: 3 } });
    const statusOf = async (id: string) => (await t.sql<{ status: string }>('select status from payments where id = ?', [Number(id)]))[0]!.status;
    try {
      let runs = 0;
      while ((await statusOf(lost.id)) !== 'COMPLETED' && runs < 4) {
        await small.reconciler!.runOnce();
        runs++;
      }
      expect(await statusOf(lost.id)).toBe('COMPLETED');
      expect(runs).toBe(2);
      // Each abandoned payment was asked about once, then pushed back (due again in twice the wait).
      expect(abandoned.map((p) => reads(p.intent))).toEqual([1, 1, 1, 1, 1]);
      const schedule = await t.sql<{ checks: number; due_in: number }>(
        `select reconcile_checks as checks, extract(epoch from reconcile_due_at - now())::int as due_in from payments where id = any(?::int[]) order by id`,
        [`{${abandoned.map((p) => p.id).join(',')}}`],
      );
      for (const s of schedule) {
        expect(s.checks).toBe(1);
        expect(s.due_in).toBeGreaterThan(60 * 2 - 5);
      }
      // Just under the backoff: a third run asks none of them again.
      await small.reconciler!.runOnce();
      expect(abandoned.map((p) => reads(p.intent))).toEqual([1, 1, 1, 1, 1]);
    } finally {
      await small.close();
    }
  });

  it('a refund asked for while a run is talking to Stripe stays in flight (and is settled by the next run)', async () => {
    const { id, intent } = await createPayment(5000);
    stripe.succeed(intent);
    await deliver(intentEvent('payment_intent.succeeded', intent));
    expect((await t.gql(`mutation { refundPayment(id: "${id}", amount: 1000, idempotencyKey: "in-flight-1") { id } }`, { token: admin })).body.errors).toBeUndefined();
    await age(id);
    // The run asks Stripe; Stripe's answer (1,000 refunded) takes a while to come back, and meanwhile
    // an ADMIN asks for 500 more (Stripe makes it at once; our row notes it).
    stripe.readReplyDelayMs = 600;
    const before = reads(intent);
    const run = reconcile();
    await expect.poll(() => reads(intent), { interval: 10 }).toBe(before + 1);
    expect((await t.gql(`mutation { refundPayment(id: "${id}", amount: 500, idempotencyKey: "in-flight-2") { id } }`, { token: admin })).body.errors).toBeUndefined();
    await run;
    // What the run saw settled what it saw; the request made meanwhile is still in flight.
    expect(await t.sql('select refund_requested_total, amount_refunded from payments where id = ?', [Number(id)])).toEqual([{ refund_requested_total: 1500, amount_refunded: 1000 }]);
    stripe.readReplyDelayMs = 0;
    await age(id);
    await reconcile();
    expect(await t.sql('select refund_requested_total, amount_refunded from payments where id = ?', [Number(id)])).toEqual([{ refund_requested_total: 1500, amount_refunded: 1500 }]);
  });

  it('audits the settling of a refund request Stripe did not make', async () => {
    const { id, intent } = await createPayment(3000);
    stripe.succeed(intent);
    await deliver(intentEvent('payment_intent.succeeded', intent));
    // Asked for, but the refund never reached Stripe (its charge shows nothing refunded).
    await t.sql('update payments set refund_requested_total = 800, refund_requested_at = now() where id = ?', [Number(id)]);
    await age(id);
    await reconcile();
    expect(await t.sql('select refund_requested_total, amount_refunded from payments where id = ?', [Number(id)])).toEqual([{ refund_requested_total: 0, amount_refunded: 0 }]);
    expect((await auditOf(id)).at(-1)).toMatchObject({ actor_type: 'RECONCILER', action: 'refund_request_settled', before: { refundRequestedTotal: 800 }, after: { refundRequestedTotal: 0 } });
  });
});

describe('abandoned payments expire', () => {
  /** As if the payment had been created `seconds` ago (its intent waiting for the customer all along). */
  const createdAgo = (id: string, seconds: number) => t.sql('update payments set created_at = now() - make_interval(secs => ?) where id = ?', [seconds, Number(id)]);
  const cancels = (intent: string) => stripe.requests.filter((r) => r.method === 'POST' && r.path === `/v1/payment_intents/${intent}/cancel`);

  it('after PAYMENT_EXPIRE_AFTER_SECONDS: canceled at Stripe, then CANCELED by the reconciler, audited, visible at once; a younger one is left alone', async () => {
    const old = await createPayment();
    const young = await createPayment();
    await createdAgo(old.id, 86_400 + 60);
    await createdAgo(young.id, 86_400 - 60);
    await status(old.id); // cached PENDING: the expiry must invalidate it
    const report = await reconcile();
    expect(report.expired).toBeGreaterThanOrEqual(1);
    expect(cancels(old.intent)).toHaveLength(1);
    expect(cancels(old.intent)[0]!.form.cancellation_reason).toBe('abandoned');
    expect(stripe.intents.get(old.intent)!.status).toBe('canceled');
    expect((await status(old.id)).status).toBe('CANCELED');
    expect((await auditOf(old.id)).at(-1)).toMatchObject({ actor_type: 'RECONCILER', action: 'status_changed', before: { status: 'PENDING' }, after: { status: 'CANCELED' } });
    // Just under the setting: untouched.
    expect(cancels(young.intent)).toHaveLength(0);
    expect((await status(young.id)).status).toBe('PENDING');
  });

  it('a customer who paid before the expiry ran: Stripe refuses the cancel, and what it says (paid) is applied; the late webhook then changes nothing', async () => {
    const { id, intent } = await createPayment();
    await createdAgo(id, 2 * 86_400);
    stripe.succeed(intent); // paid at Stripe; its webhook has not come yet
    await reconcile();
    expect(cancels(intent)).toHaveLength(1);
    expect(stripe.intents.get(intent)!.status).toBe('succeeded');
    expect((await status(id)).status).toBe('COMPLETED');
    expect((await deliver(intentEvent('payment_intent.succeeded', intent))).outcome).toBe('ignored_transition');
    expect((await status(id)).status).toBe('COMPLETED');
  });

  it('the other order: the webhook first, and the expiry leaves a COMPLETED payment alone', async () => {
    const { id, intent } = await createPayment();
    await createdAgo(id, 2 * 86_400);
    stripe.succeed(intent);
    expect((await deliver(intentEvent('payment_intent.succeeded', intent))).outcome).toBe('transitioned');
    await reconcile();
    expect(cancels(intent)).toHaveLength(0);
    expect((await status(id)).status).toBe('COMPLETED');
  });

  it('a payment CANCELED here that Stripe then reports paid is COMPLETED: one Stripe charged is never left CANCELED', async () => {
    // Its intent was made but never linked (the process died between the two), so the expiry cancels it here.
    const [{ id }] = (await t.sql<{ id: number }>(`insert into payments (user_id, amount, currency, created_at, updated_at) values (2, 1700, 'usd', now() - interval '2 days', now() - interval '2 days') returning id`)) as [{ id: number }];
    await reconcile();
    expect((await status(String(id))).status).toBe('CANCELED');
    const paid = intentEvent('payment_intent.succeeded', 'pi_unlinked_paid', { metadata: { paymentId: String(id) } });
    expect((await deliver(paid)).outcome).toBe('transitioned');
    expect((await status(String(id))).status).toBe('COMPLETED');
    expect((await auditOf(String(id))).at(-1)).toMatchObject({
      actor_type: 'STRIPE',
      action: 'status_changed',
      before: { status: 'CANCELED', stripePaymentId: null },
      after: { status: 'COMPLETED', stripePaymentId: 'pi_unlinked_paid' },
    });
  });
});

describe('intermediate states', () => {
  it('maps processing and requires_action from webhooks, never backwards, and reconciliation sees them too', async () => {
    const { id, intent } = await createPayment();
    expect((await deliver(intentEvent('payment_intent.requires_action', intent))).outcome).toBe('transitioned');
    expect((await status(id)).status).toBe('REQUIRES_ACTION');
    expect((await deliver(intentEvent('payment_intent.processing', intent))).outcome).toBe('transitioned');
    expect((await status(id)).status).toBe('PROCESSING');
    // Waiting for the bank never goes back to waiting for the customer.
    expect((await deliver(intentEvent('payment_intent.requires_action', intent))).outcome).toBe('ignored_transition');
    expect((await status(id)).status).toBe('PROCESSING');

    // Reconciliation reads the same states from the intent itself.
    const other = await createPayment();
    stripe.setIntentStatus(other.intent, 'requires_action');
    await age(other.id);
    await reconcile();
    expect((await status(other.id)).status).toBe('REQUIRES_ACTION');
    stripe.setIntentStatus(other.intent, 'requires_payment_method', { message: 'Your card was declined.' });
    await age(other.id);
    await reconcile();
    const failed = await t.gql(`{ payment(id: "${other.id}") { status failureReason } }`, { token: admin });
    expect(failed.body.data!.payment).toEqual({ status: 'FAILED', failureReason: 'Your card was declined.' });
  });

  it('lets a payment waiting for the customer be canceled, not one waiting for the bank', async () => {
    const waiting = await createPayment();
    await deliver(intentEvent('payment_intent.requires_action', waiting.intent));
    const ok = await t.gql(`mutation { cancelPayment(id: "${waiting.id}") { id status } }`, { token: user2 });
    expect(ok.body.errors).toBeUndefined();
    const processing = await createPayment();
    await deliver(intentEvent('payment_intent.processing', processing.intent));
    const refused = await t.gql(`mutation { cancelPayment(id: "${processing.id}") { id } }`, { token: user2 });
    expect(refused.body.errors?.[0]).toMatchObject({ extensions: { code: 'CONFLICT' }, message: expect.stringMatching(/PROCESSING/) });
  });
});

describe('npm run reconcile', () => {
  it('runs once against the configured database and Stripe, prints its report, and settles', async () => {
    const { id, intent } = await createPayment();
    stripe.succeed(intent);
    await age(id);
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      NODE_ENV: 'test',
      DATABASE_URL: t.db.url,
      STRIPE_SECRET_KEY: DOUBLE_SECRET_KEY,
      STRIPE_API_BASE: stripe.url,
      RECONCILE_AFTER_SECONDS: '60',
      RECONCILE_MIN_CALL_INTERVAL_MS: '0',
      LOG_LEVEL: 'silent',
    };
    for (const name of ['VITEST', 'VITEST_POOL_ID', 'VITEST_WORKER_ID', 'REDIS_URL']) delete env[name];
    const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn('npm', ['run', '--silent', 'reconcile'], { cwd: projectRoot, env });
      let out = '';
      let err = '';
      child.stdout.on('data', (c) => (out += c));
      child.stderr.on('data', (c) => (err += c));
      child.on('exit', (c) => resolve({ code: c, stdout: out, stderr: err }));
    });
    expect(code, stderr).toBe(0);
    const report = JSON.parse(stdout.trim().split('\n').at(-1)!);
    expect(report).toMatchObject({ skipped: false, failed: 0 });
    expect(report.changed).toBeGreaterThanOrEqual(1);
    expect((await t.sql('select status from payments where id = ?', [Number(id)]))[0]).toEqual({ status: 'COMPLETED' });
  }, 60_000);
});

describe('stopping during a run', () => {
  it('SIGTERM while a run waits on a slow Stripe: exit 0 within SHUTDOWN_TIMEOUT_MS, every payment settled or untouched', { timeout: 90_000 }, async () => {
    const db = await createTestDatabase();
    try {
      await prepareDatabase(db.url, { users: 3, paymentsPerUser: 0 });
      const server = await startProductionServer({
        ...stripeEnvFor(stripe),
        DATABASE_URL: db.url,
        SINGLE_INSTANCE: 'true',
        RECONCILE_INTERVAL_SECONDS: '1',
        RECONCILE_AFTER_SECONDS: '0',
        RECONCILE_MIN_CALL_INTERVAL_MS: '0',
        SHUTDOWN_TIMEOUT_MS: '4000',
      });
      // Six payments paid at Stripe whose webhooks never came; each read of Stripe takes 1.5 s.
      const { users } = await loadTokens(1);
      const ids: string[] = [];
      for (let n = 0; n < 6; n++) {
        const res = await fetch(server.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${users[0]!.token}` },
          body: JSON.stringify({ query: `mutation { createPayment(input: { amount: 1200, currency: "usd", idempotencyKey: "stop-${n}-${Date.now()}" }) { payment { id stripePaymentId } } }` }),
        });
        const payment = ((await res.json()) as { data: { createPayment: { payment: { id: string; stripePaymentId: string } } } }).data.createPayment.payment;
        stripe.succeed(payment.stripePaymentId);
        ids.push(payment.id);
      }
      stripe.readDelayMs = 1500;
      const readsBefore = stripe.requests.filter((r) => r.method === 'GET').length;
      await expect.poll(() => stripe.requests.filter((r) => r.method === 'GET').length, { timeout: 10_000, interval: 20 }).toBeGreaterThan(readsBefore);
      const signalled = Date.now();
      const code = await server.stop('SIGTERM');
      const took = Date.now() - signalled;
      expect(code).toBe(0);
      expect(took).toBeLessThan(4000);
      // Each payment is either settled (COMPLETED, with its RECONCILER entry) or as it was (PENDING, none).
      const rows = await db.query<{ id: number; status: string; entries: number }>(
        `select p.id, p.status, (select count(*)::int from audit_log a where a.entity_type = 'PAYMENT' and a.entity_id = p.id and a.actor_type = 'RECONCILER') as entries
         from payments p where p.id = any($1::int[]) order by p.id`,
        [ids.map(Number)],
      );
      for (const row of rows) expect([['COMPLETED', 1], ['PENDING', 0]]).toContainEqual([row.status, row.entries]);
      // The run was cut short: some payments were never settled.
      expect(rows.filter((r) => r.status === 'PENDING').length).toBeGreaterThan(0);
      console.log(`[reconciliation] SIGTERM during a run: exit ${code} after ${took} ms; ${rows.filter((r) => r.status === 'COMPLETED').length} of 6 settled, the rest untouched`);
    } finally {
      stripe.readDelayMs = 0;
      await db.drop();
    }
  });
});
