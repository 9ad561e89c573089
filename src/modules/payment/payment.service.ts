import type { SqlEntityManager } from '@mikro-orm/postgresql';
import Stripe from 'stripe';
import { PaymentStatus } from './payment.entity.js';
import { PAYMENT_COLUMNS, type PaymentRow } from './payment.repository.js';
import type { CreatePaymentInput } from './payment.inputs.js';
import type { StripeClient } from './stripe.client.js';
import { canSeeUser, type Viewer } from '../auth/auth.js';
import { queryRows } from '../../core/sql.js';
import { paymentWriteTags } from '../../core/cache/index.js';
import {
  BadUserInputError,
  ConflictError,
  NotFoundError,
  PaymentProviderUnavailableError,
  PaymentsNotConfiguredError,
} from '../../core/errors.js';

export interface PaymentDeps {
  em: SqlEntityManager;
  stripe: StripeClient | null;
  /** Invalidates cached reads of what a write touched. */
  invalidate: (tags: string[]) => Promise<void>;
}

export interface CreatePaymentResult {
  payment: PaymentRow;
  clientSecret: string | null;
}

/** Stripe answered with a definitive "no": retrying cannot help, so the payment is FAILED. */
function isDefinitiveDecline(err: unknown): err is Stripe.errors.StripeError {
  return err instanceof Stripe.errors.StripeCardError || err instanceof Stripe.errors.StripeInvalidRequestError;
}

function requireStripe(stripe: StripeClient | null): StripeClient {
  if (!stripe) throw new PaymentsNotConfiguredError();
  return stripe;
}

async function paymentRow(em: SqlEntityManager, id: number): Promise<PaymentRow | null> {
  const [row] = await queryRows<PaymentRow>(em, `select ${PAYMENT_COLUMNS} from payments p where p.id = ?`, [id]);
  return row ?? null;
}

/** Concurrent createPayment calls for one (user, key) in this process share one completion. */
const inFlight = new Map<string, Promise<CreatePaymentResult>>();

/**
 * Payment writes through Stripe. The database row is written first and committed, so nothing the
 * client asked for is ever lost: if Stripe fails or the process dies after that, a retry with the same
 * idempotency key finds the row and completes it, and Stripe's own Idempotency-Key (`payment:<id>`)
 * makes sure that at most one PaymentIntent exists for it. Final statuses come from the webhook.
 */
export const paymentService = {
  async createPayment(deps: PaymentDeps, viewer: Viewer, input: CreatePaymentInput): Promise<CreatePaymentResult> {
    const stripe = requireStripe(deps.stripe);
    const currency = input.currency.toLowerCase();
    const description = input.description ?? null;
    const [inserted] = await queryRows<{ id: number }>(
      deps.em,
      `insert into payments (user_id, amount, currency, description, idempotency_key, status)
       values (?, ?, ?, ?, ?, 'PENDING')
       on conflict (user_id, idempotency_key) do nothing
       returning id`,
      [viewer.id, input.amount, currency, description, input.idempotencyKey],
    );
    const [existing] = inserted
      ? []
      : await queryRows<{ id: number; amount: number; currency: string; description: string | null }>(
          deps.em,
          'select id, amount, currency, description from payments where user_id = ? and idempotency_key = ?',
          [viewer.id, input.idempotencyKey],
        );
    if (existing && (existing.amount !== input.amount || existing.currency !== currency || existing.description !== description)) {
      throw new ConflictError('idempotencyKey was already used for a payment with other parameters');
    }
    const id = inserted?.id ?? existing!.id;
    if (inserted) await deps.invalidate(paymentWriteTags({ id, userId: viewer.id, stripePaymentIds: [] }));

    const flightKey = `${viewer.id}:${input.idempotencyKey}`;
    let flight = inFlight.get(flightKey);
    if (!flight) {
      flight = completeIntent(deps, stripe, id).finally(() => inFlight.delete(flightKey));
      inFlight.set(flightKey, flight);
    }
    return flight;
  },

  /** Owner or ADMIN, PENDING only. Stripe's `payment_intent.canceled` webhook makes it CANCELED. */
  async cancelPayment(deps: PaymentDeps, viewer: Viewer, id: number): Promise<PaymentRow> {
    const stripe = requireStripe(deps.stripe);
    const payment = await paymentRow(deps.em, id);
    if (!payment || !canSeeUser(viewer, payment.userId)) throw new NotFoundError('Payment');
    if (payment.status !== PaymentStatus.PENDING) {
      throw new ConflictError(`only a PENDING payment can be canceled; this one is ${payment.status}`);
    }
    const intentId = payment.stripePaymentId;
    if (!intentId) {
      // Stripe never heard of it: cancel here, unless a concurrent retry just created its intent.
      const updated = await queryRows(
        deps.em,
        `update payments set status = 'CANCELED', updated_at = now() where id = ? and status = 'PENDING' and stripe_payment_id is null returning id`,
        [id],
      );
      if (updated.length === 0) return this.cancelPayment(deps, viewer, id);
      await deps.invalidate(paymentWriteTags({ id, userId: payment.userId, stripePaymentIds: [] }));
      return (await paymentRow(deps.em, id))!;
    }
    try {
      await stripe.paymentIntents.cancel(intentId, {}, { idempotencyKey: `cancel:${id}` });
    } catch (err) {
      if (err instanceof Stripe.errors.StripeInvalidRequestError) throw new ConflictError(`Stripe refused to cancel: ${err.message}`);
      throw new PaymentProviderUnavailableError('The payment provider is unavailable; retry the cancelation');
    }
    return payment;
  },

  /**
   * ADMIN, COMPLETED only; `amount` defaults to what is left to refund. Stripe's `charge.refunded`
   * webhook records it. The Idempotency-Key is the caller's, or is derived from the payment's state, so
   * a retried request never refunds twice.
   */
  async refundPayment(deps: PaymentDeps, id: number, amount: number | null, idempotencyKey: string | null): Promise<PaymentRow> {
    const stripe = requireStripe(deps.stripe);
    const payment = await paymentRow(deps.em, id);
    if (!payment) throw new NotFoundError('Payment');
    if (payment.status !== PaymentStatus.COMPLETED) {
      throw new ConflictError(`only a COMPLETED payment can be refunded; this one is ${payment.status}`);
    }
    const refundable = payment.amount - payment.amountRefunded;
    const refund = amount ?? refundable;
    if (!Number.isInteger(refund) || refund < 1 || refund > refundable) {
      throw new BadUserInputError(`amount must be an integer from 1 to ${refundable} (what is left to refund)`, { argumentName: 'amount' });
    }
    const intentId = payment.stripePaymentId;
    if (!intentId) throw new ConflictError('the payment has no Stripe PaymentIntent to refund');
    const key = idempotencyKey ? `refund:${id}:${idempotencyKey}` : `refund:${id}:${payment.amountRefunded}:${refund}`;
    try {
      await stripe.refunds.create({ payment_intent: intentId, amount: refund, metadata: { paymentId: String(id) } }, { idempotencyKey: key });
    } catch (err) {
      if (err instanceof Stripe.errors.StripeInvalidRequestError) throw new ConflictError(`Stripe refused the refund: ${err.message}`);
      throw new PaymentProviderUnavailableError('The payment provider is unavailable; retry the refund (it will not be made twice)');
    }
    return payment;
  },
};

/** Creates (or finds again) the PaymentIntent of a committed PENDING payment. */
async function completeIntent(deps: PaymentDeps, stripe: StripeClient, id: number): Promise<CreatePaymentResult> {
  const [row] = await queryRows<{
    status: PaymentStatus;
    stripe_payment_id: string | null;
    stripe_attempt: number;
    user_id: number;
    amount: number;
    currency: string;
    description: string | null;
  }>(deps.em, 'select status, stripe_payment_id, stripe_attempt, user_id, amount, currency, description from payments where id = ?', [id]);
  if (!row) throw new NotFoundError('Payment');
  if (row.status !== PaymentStatus.PENDING) return { payment: (await paymentRow(deps.em, id))!, clientSecret: null };

  if (row.stripe_payment_id) {
    const intent = await callStripe(() => stripe.paymentIntents.retrieve(row.stripe_payment_id!));
    return { payment: (await paymentRow(deps.em, id))!, clientSecret: intent.client_secret };
  }

  let intent: Stripe.PaymentIntent;
  try {
    intent = await stripe.paymentIntents.create(
      {
        amount: row.amount,
        currency: row.currency,
        ...(row.description ? { description: row.description } : {}),
        metadata: { paymentId: String(id), userId: String(row.user_id) },
        automatic_payment_methods: { enabled: true },
      },
      { idempotencyKey: row.stripe_attempt === 0 ? `payment:${id}` : `payment:${id}:${row.stripe_attempt}` },
    );
  } catch (err) {
    if (err instanceof Stripe.errors.StripeAPIError) {
      // Stripe saved this 500 under the key and would replay it; the next try uses a new key. An
      // intent made by the failed call (if any) was never handed out, so nobody can pay it. A timeout
      // or lost connection keeps the key: Stripe replays a success it did record.
      await queryRows(deps.em, 'update payments set stripe_attempt = stripe_attempt + 1 where id = ? and stripe_attempt = ?', [id, row.stripe_attempt]);
    }
    if (!isDefinitiveDecline(err)) throw new PaymentProviderUnavailableError();
    await queryRows(
      deps.em,
      `update payments set status = 'FAILED', failure_reason = ?, updated_at = now() where id = ? and status = 'PENDING'`,
      [err.message.slice(0, 1000), id],
    );
    await deps.invalidate(paymentWriteTags({ id, userId: row.user_id, stripePaymentIds: [] }));
    return { payment: (await paymentRow(deps.em, id))!, clientSecret: null };
  }

  const stored = await queryRows(
    deps.em,
    `update payments set stripe_payment_id = ?, updated_at = now()
     where id = ? and status = 'PENDING' and (stripe_payment_id is null or stripe_payment_id = ?) returning id`,
    [intent.id, id, intent.id],
  );
  if (stored.length === 0) {
    // Canceled while Stripe was creating the intent: the intent must not stay payable.
    await stripe.paymentIntents.cancel(intent.id, {}, { idempotencyKey: `cancel:${id}` }).catch(() => undefined);
    return { payment: (await paymentRow(deps.em, id))!, clientSecret: null };
  }
  await deps.invalidate(paymentWriteTags({ id, userId: row.user_id, stripePaymentIds: [intent.id] }));
  return { payment: (await paymentRow(deps.em, id))!, clientSecret: intent.client_secret };
}

async function callStripe<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch {
    throw new PaymentProviderUnavailableError();
  }
}

