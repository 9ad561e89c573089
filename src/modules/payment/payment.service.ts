import { randomUUID } from 'node:crypto';
import type { SqlEntityManager } from '@mikro-orm/postgresql';
import Stripe from 'stripe';
import { Payment, PaymentStatus } from './payment.entity.js';
import { paymentEntityToRow, type PaymentRepository, type PaymentRow } from './payment.repository.js';
import type { CreatePaymentInput } from './payment.inputs.js';
import type { StripeClient } from './stripe.client.js';
import { canSeeUser, type Viewer } from '../auth/auth.js';
import { userEntityToRow, type UserRow } from '../user/user.repository.js';
import type { WriteChange } from '../../core/cache/index.js';
import { inTransaction } from '../../core/sql.js';
import { CANCELABLE } from './payment.status.js';
import { AuditEntityType, AuditLogEntry } from '../audit/audit.entity.js';
import type { AuditChange, AuditContext } from '../audit/audit.js';
import type { PaymentAttempts } from './payment.attempts.js';
import {
  BadUserInputError,
  ConflictError,
  NotFoundError,
  PaymentAttemptsExceededError,
  PaymentProviderUnavailableError,
  PaymentsNotConfiguredError,
} from '../../core/errors.js';

export interface PaymentDeps {
  em: SqlEntityManager;
  stripe: StripeClient | null;
  /** Records a committed write (the caches, the replicas' marks and the event bus learn what it changed). */
  written: (change: WriteChange) => Promise<void>;
  /** Told of each user row a write path loaded, so `payment { user }` in its answer costs no statement. */
  primeUser?: (user: UserRow) => void;
  /** Who is writing: each change is appended to the audit log in its own transaction. */
  audit: AuditContext;
}

export interface CreatePaymentResult {
  payment: PaymentRow;
  clientSecret: string | null;
}

/** PaymentIntent states in which the customer still has something to do with its client secret. */
const CUSTOMER_CAN_ACT: ReadonlySet<string> = new Set(['requires_payment_method', 'requires_confirmation', 'requires_action']);

/** Stripe answered with a definitive "no": retrying cannot help, so the payment is FAILED. */
function isDefinitiveDecline(err: unknown): err is Stripe.errors.StripeError {
  return err instanceof Stripe.errors.StripeCardError || err instanceof Stripe.errors.StripeInvalidRequestError;
}

function requireStripe(stripe: StripeClient | null): StripeClient {
  if (!stripe) throw new PaymentsNotConfiguredError();
  return stripe;
}

function payments(deps: PaymentDeps): PaymentRepository {
  return deps.em.getRepository(Payment);
}

/** The payment as it is now in the database (its user joined and primed), for an answer. */
async function paymentNow(deps: PaymentDeps, id: number): Promise<PaymentRow> {
  const payment = await payments(deps).getPaymentWithUser(id);
  if (!payment) throw new NotFoundError('Payment');
  return answer(deps, payment);
}

/** Runs `write` and appends the audit entry it returns (if any) in one transaction. */
async function audited<T>(deps: PaymentDeps, write: (repo: PaymentRepository) => Promise<{ result: T; change: AuditChange | null }>): Promise<T> {
  return inTransaction(deps.em, async (tx) => {
    const { result, change } = await write(tx.getRepository(Payment));
    if (change) await tx.getRepository(AuditLogEntry).append(deps.audit, [change]);
    return result;
  });
}

const paymentChange = (entityId: number, action: string, before: Record<string, unknown> | null, after: Record<string, unknown> | null): AuditChange => ({
  entityType: AuditEntityType.PAYMENT,
  entityId,
  action,
  before,
  after,
});

function answer(deps: PaymentDeps, payment: Payment): PaymentRow {
  if (payment.user.isInitialized()) deps.primeUser?.(userEntityToRow(payment.user.getEntity()));
  return paymentEntityToRow(payment);
}

/**
 * Payment writes through Stripe. The database row is written first and committed, so nothing the
 * client asked for is ever lost: if Stripe fails or the process dies after that, a retry with the same
 * idempotency key finds the row and completes it, and Stripe's own Idempotency-Key (`payment:<id>`)
 * makes sure that at most one PaymentIntent exists for it. Final statuses come from the webhook.
 */
export function createPaymentService(options: { /** Card-testing protection; null: none. */ attempts?: PaymentAttempts | null } = {}) {
  /** Concurrent createPayment calls for one (user, key) on this app instance share one completion. */
  const inFlight = new Map<string, Promise<CreatePaymentResult>>();
  const attempts = options.attempts ?? null;
  return {
    async createPayment(deps: PaymentDeps, viewer: Viewer, input: CreatePaymentInput): Promise<CreatePaymentResult> {
      const stripe = requireStripe(deps.stripe);
      const currency = input.currency.toLowerCase();
      const description = input.description ?? null;
      const data = { userId: viewer.id, amount: input.amount, currency, description, idempotencyKey: input.idempotencyKey };
      let attemptTaken = false;
      if (attempts) {
        const wait = await attempts.take(viewer.id);
        attemptTaken = wait === 0;
        // Over the budget, a retry of a payment that exists is still answered; a new one is refused.
        if (!attemptTaken && !(await payments(deps).getPaymentByIdempotencyKey(viewer.id, input.idempotencyKey))) {
          await refuse(deps, viewer, data, 'attempts', wait, `At most ${attempts.perMinute} new payments per minute; retry in ${wait} s`);
        }
      }
      const created = await audited(deps, async (tx) => {
        const result = await tx.insertPendingOnce(data, attempts?.failures);
        const { idempotencyKey: _key, ...fields } = data;
        return { result, change: result.inserted ? paymentChange(result.id, 'create', null, { ...fields, status: PaymentStatus.PENDING }) : null };
      });
      if ('refused' in created) {
        const rule = attempts!.failures!;
        const clearAt = await payments(deps).failuresClearAt(viewer.id, rule);
        const wait = Math.max(1, Math.ceil(((clearAt?.getTime() ?? Date.now()) - Date.now()) / 1000));
        return refuse(deps, viewer, data, 'failures', wait, `New payments are refused for now: ${rule.max} or more payments failed within ${rule.windowSeconds} s; retry in ${wait} s`);
      }
      const id = created.id;
      if (!created.inserted) {
        // A retry of an existing payment is not a new attempt.
        // (The store never rejects: it counts locally when Redis is away.)
        if (attemptTaken) attempts!.giveBack(viewer.id, () => undefined);
        const { existing } = created;
        if (existing.amount !== input.amount || existing.currency !== currency || (existing.description ?? null) !== description) {
          throw new ConflictError('idempotencyKey was already used for a payment with other parameters');
        }
      } else {
        await deps.written({ payments: [{ id, userId: viewer.id }] });
      }

      const flightKey = `${viewer.id}:${input.idempotencyKey}`;
      let flight = inFlight.get(flightKey);
      if (!flight) {
        flight = completeIntent(deps, stripe, id).finally(() => inFlight.delete(flightKey));
        inFlight.set(flightKey, flight);
      }
      return flight;
    },

    /** Owner or ADMIN, PENDING only. Stripe's `payment_intent.canceled` webhook makes it CANCELED. */
    async cancelPayment(deps: PaymentDeps, viewer: Viewer, id: number, tries = 3): Promise<PaymentRow> {
      const stripe = requireStripe(deps.stripe);
      const payment = await payments(deps).getPaymentWithUser(id);
      if (!payment || !canSeeUser(viewer, payment.user.id)) throw new NotFoundError('Payment');
      if (!CANCELABLE.includes(payment.status)) {
        throw new ConflictError(`only a payment not yet paid (PENDING, REQUIRES_ACTION) can be canceled; this one is ${payment.status}`);
      }
      const intentId = payment.stripePaymentId;
      if (!intentId) {
        // Stripe never heard of it: cancel here, unless a concurrent retry just created its intent.
        const canceled = await audited(deps, async (tx) => {
          const done = await tx.cancelUnlinked(id, payment.status, deps.audit.actorId);
          return { result: done, change: done ? paymentChange(id, 'status_changed', { status: payment.status }, { status: PaymentStatus.CANCELED }) : null };
        });
        // It moved meanwhile (a concurrent retry created its intent, a webhook settled it): decide again
        // on what it is now, a few times at most.
        if (!canceled) {
          if (tries > 1) return this.cancelPayment(deps, viewer, id, tries - 1);
          throw new ConflictError('the payment changed while it was being canceled; read it and try again');
        }
        await deps.written({ payments: [{ id, userId: payment.user.id }] });
        return paymentNow(deps, id);
      }
      try {
        await stripe.paymentIntents.cancel(intentId, {}, { idempotencyKey: cancelKey(id) });
      } catch (err) {
        if (err instanceof Stripe.errors.StripeInvalidRequestError) throw new ConflictError(`Stripe refused to cancel: ${err.message}`);
        throw new PaymentProviderUnavailableError('The payment provider is unavailable; retry the cancelation');
      }
      // Stripe cancels; its webhook (audited as STRIPE) makes the payment CANCELED. The request is on record.
      await audited(deps, async () => ({ result: null, change: paymentChange(id, 'cancel_requested', null, { stripePaymentId: intentId }) }));
      return answer(deps, payment);
    },

    /**
     * ADMIN, COMPLETED only; `amount` defaults to what is left to refund. Stripe's `charge.refunded`
     * webhook records it. The Idempotency-Key is the caller's, or is derived from the payment's state, so
     * a retried request never refunds twice.
     */
    async refundPayment(deps: PaymentDeps, id: number, amount: number | null, idempotencyKey: string | null): Promise<PaymentRow> {
      const stripe = requireStripe(deps.stripe);
      const payment = await payments(deps).getPaymentWithUser(id);
      if (!payment) throw new NotFoundError('Payment');
      if (payment.status !== PaymentStatus.COMPLETED) {
        throw new ConflictError(`only a COMPLETED payment can be refunded; this one is ${payment.status}`);
      }
      // Refunds asked for and not yet recorded (in flight) count as made: what is left is after them.
      const refundedOrAsked = Math.max(payment.amountRefunded, payment.refundRequestedTotal);
      const refundable = payment.amount - refundedOrAsked;
      const refund = amount ?? refundable;
      if (!Number.isInteger(refund) || refund < 1 || refund > refundable) {
        throw new BadUserInputError(`amount must be an integer from 1 to ${refundable} (what is left to refund, refunds in flight included)`, { argumentName: 'amount' });
      }
      const intentId = payment.stripePaymentId;
      if (!intentId) throw new ConflictError('the payment has no Stripe PaymentIntent to refund');
      // The refund this request stands for, whatever Idempotency-Key it ends up sent under.
      // Without the caller's key, the refund is named by where it starts (refunds in flight included) and its amount.
      const refundKey = idempotencyKey ? `refund:${id}:${idempotencyKey}` : `refund:${id}:${refundedOrAsked}:${refund}`;
      const attempt = payment.refundAttempt;
      const unavailable = () => new PaymentProviderUnavailableError('The payment provider is unavailable; retry the refund (it will not be made twice)');
      // After a server error under a key, Stripe replays that error for it, and whether the refund was
      // made is open: Stripe's list of the intent's refunds says, before anything is sent under a new key.
      const made = attempt > 0 ? await callStripe(() => findRefund(stripe, intentId, refundKey), unavailable) : null;
      if (!made) {
        try {
          await stripe.refunds.create(
            { payment_intent: intentId, amount: refund, metadata: { paymentId: String(id), refundKey } },
            { idempotencyKey: attempt === 0 ? refundKey : `${refundKey}:${attempt}` },
          );
        } catch (err) {
          if (err instanceof Stripe.errors.StripeInvalidRequestError) throw new ConflictError(`Stripe refused the refund: ${err.message}`);
          // A timeout or a lost connection keeps the key: Stripe replays a refund it did make.
          if (err instanceof Stripe.errors.StripeAPIError) await payments(deps).nextRefundAttempt(id, attempt);
          throw unavailable();
        }
      }
      // In flight until Stripe's webhook records it; reconciliation asks Stripe if it never does.
      const requested = refundedOrAsked + refund;
      await audited(deps, async (tx) => {
        const total = await tx.noteRefundRequested(id, requested, deps.audit.actorId);
        return { result: total, change: paymentChange(id, 'refund_requested', { refundRequestedTotal: payment.refundRequestedTotal }, { refundRequestedTotal: total, amount: refund }) };
      });
      return answer(deps, payment);
    },
  };
}

/** Payment writes of one app instance (its in-flight completions are its own). */
export type PaymentService = ReturnType<typeof createPaymentService>;

/**
 * Refuses a new payment (card-testing protection): the refusal is appended to the audit log (on the
 * user, action `payment_refused`, with its reason) in a transaction of its own, then thrown.
 */
async function refuse(
  deps: PaymentDeps,
  viewer: Viewer,
  data: { amount: number; currency: string },
  reason: 'attempts' | 'failures',
  retryAfterSeconds: number,
  message: string,
): Promise<never> {
  await inTransaction(deps.em, (tx) =>
    tx.getRepository(AuditLogEntry).append(deps.audit, [
      { entityType: AuditEntityType.USER, entityId: viewer.id, action: 'payment_refused', before: null, after: { reason, retryAfterSeconds, amount: data.amount, currency: data.currency } },
    ]),
  );
  throw new PaymentAttemptsExceededError(message, reason, retryAfterSeconds);
}

/** Creates (or finds again) the PaymentIntent of a committed PENDING payment. */
async function completeIntent(deps: PaymentDeps, stripe: StripeClient, id: number): Promise<CreatePaymentResult> {
  const repo = payments(deps);
  const payment = await repo.getPaymentWithUser(id);
  if (!payment) throw new NotFoundError('Payment');
  const userId = payment.user.id;
  // Once paid, failed or canceled, a retry gets the payment as it is, and no secret to act on.
  if (!CANCELABLE.includes(payment.status)) return { payment: answer(deps, payment), clientSecret: null };

  if (payment.stripePaymentId) {
    // A retry (the client lost the first answer) while the customer can still act: pay, or finish
    // 3-D Secure (REQUIRES_ACTION). The secret goes out only while Stripe agrees the intent awaits them.
    const intent = await callStripe(() => stripe.paymentIntents.retrieve(payment.stripePaymentId!));
    return { payment: answer(deps, payment), clientSecret: CUSTOMER_CAN_ACT.has(intent.status) ? intent.client_secret : null };
  }
  if (payment.status !== PaymentStatus.PENDING) return { payment: answer(deps, payment), clientSecret: null };

  let intent: Stripe.PaymentIntent;
  try {
    intent = await stripe.paymentIntents.create(
      {
        amount: payment.amount,
        currency: payment.currency,
        ...(payment.description ? { description: payment.description } : {}),
        metadata: { paymentId: String(id), userId: String(userId) },
        automatic_payment_methods: { enabled: true },
      },
      { idempotencyKey: payment.stripeAttempt === 0 ? `payment:${id}` : `payment:${id}:${payment.stripeAttempt}` },
    );
  } catch (err) {
    if (err instanceof Stripe.errors.StripeAPIError) {
      // Stripe saved this 500 under the key and would replay it; the next try uses a new key. An
      // intent made by the failed call (if any) was never handed out, so nobody can pay it. A timeout
      // or lost connection keeps the key: Stripe replays a success it did record.
      await repo.nextStripeAttempt(id, payment.stripeAttempt);
    }
    if (!isDefinitiveDecline(err)) throw new PaymentProviderUnavailableError();
    const reason = err.message.slice(0, 1000);
    await audited(deps, async (tx) => {
      const failed = await tx.failPending(id, reason, deps.audit.actorId);
      return { result: failed, change: failed ? paymentChange(id, 'status_changed', { status: PaymentStatus.PENDING, failureReason: null }, { status: PaymentStatus.FAILED, failureReason: reason }) : null };
    });
    await deps.written({ payments: [{ id, userId }] });
    return { payment: await paymentNow(deps, id), clientSecret: null };
  }

  const link = await audited(deps, async (tx) => {
    const outcome = await tx.linkIntent(id, intent.id);
    return { result: outcome, change: outcome === 'linked' ? paymentChange(id, 'intent_created', { stripePaymentId: null }, { stripePaymentId: intent.id }) : null };
  });
  if (link === 'refused') {
    // Canceled while Stripe was creating the intent: the intent must not stay payable.
    await stripe.paymentIntents.cancel(intent.id, {}, { idempotencyKey: cancelKey(id) }).catch(() => undefined);
    return { payment: await paymentNow(deps, id), clientSecret: null };
  }
  await deps.written({ payments: [{ id, userId, stripePaymentIds: [intent.id] }] });
  return { payment: await paymentNow(deps, id), clientSecret: intent.client_secret };
}

async function callStripe<T>(call: () => Promise<T>, unavailable = () => new PaymentProviderUnavailableError()): Promise<T> {
  try {
    return await call();
  } catch {
    throw unavailable();
  }
}

/** The refund of this intent that was asked for as `refundKey` (our metadata), if Stripe made it. */
async function findRefund(stripe: StripeClient, intentId: string, refundKey: string): Promise<Stripe.Refund | null> {
  for await (const refund of stripe.refunds.list({ payment_intent: intentId, limit: 100 })) {
    if (refund.metadata?.refundKey === refundKey) return refund;
  }
  return null;
}

/**
 * A key for one cancel call. Canceling is idempotent by nature (a canceled intent stays canceled) and
 * the SDK's own retries within the call reuse it; a new call gets a new key, so a server error Stripe
 * saved under an earlier one is never replayed to it.
 */
const cancelKey = (id: number) => `cancel:${id}:${randomUUID()}`;

