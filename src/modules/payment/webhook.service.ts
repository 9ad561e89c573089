import type { SqlEntityManager } from '@mikro-orm/postgresql';
import type Stripe from 'stripe';
import { Payment, PaymentStatus } from './payment.entity.js';
import { StripeEvent } from './stripe-event.entity.js';
import { canTransition } from './payment.status.js';
import { inTransaction } from '../../core/sql.js';
import { paymentWriteTags } from '../../core/cache/index.js';

export type WebhookOutcome =
  | 'duplicate'
  | 'transitioned'
  | 'ignored_transition'
  | 'refund_recorded'
  | 'unknown_payment_intent'
  | 'ignored_type';

const TARGET: Partial<Record<string, PaymentStatus>> = {
  'payment_intent.succeeded': PaymentStatus.COMPLETED,
  'payment_intent.payment_failed': PaymentStatus.FAILED,
  'payment_intent.canceled': PaymentStatus.CANCELED,
};

/**
 * Finds and locks the payment an intent belongs to: by our stored intent id, else by the
 * `metadata.paymentId` we gave Stripe (a crash may have come between creating the intent and storing
 * its id; the event then links them).
 */
async function lockPayment(tx: SqlEntityManager, intentId: string, metadataPaymentId: string | undefined): Promise<Payment | null> {
  const repo = tx.getRepository(Payment);
  const byIntent = await repo.getPaymentByStripeId(intentId, { lock: true });
  if (byIntent) return byIntent;
  if (!metadataPaymentId || !/^[1-9]\d{0,9}$/.test(metadataPaymentId)) return null;
  return repo.getUnlinkedPaymentWithUser(Number(metadataPaymentId), { lock: true });
}

/**
 * Applies one verified Stripe event, exactly once. The event id is inserted into `stripe_events` in the
 * same transaction as the change it causes; a redelivery (also a concurrent one, which waits on the
 * primary key) inserts nothing and changes nothing. Returns the cache tags to invalidate.
 */
export async function applyStripeEvent(em: SqlEntityManager, event: Stripe.Event): Promise<{ outcome: WebhookOutcome; tags: string[] }> {
  return inTransaction(em, async (tx) => {
    const events = tx.getRepository(StripeEvent);
    if (!(await events.recordReceived(event.id, event.type))) return { outcome: 'duplicate' as const, tags: [] };

    const payments = tx.getRepository(Payment);
    let outcome: WebhookOutcome = 'ignored_type';
    let payment: Payment | null = null;
    let tags: string[] = [];
    const target = Object.hasOwn(TARGET, event.type) ? TARGET[event.type] : undefined;

    if (target) {
      const intent = event.data.object as Stripe.PaymentIntent;
      payment = await lockPayment(tx, intent.id, intent.metadata?.paymentId);
      if (!payment) outcome = 'unknown_payment_intent';
      else if (!canTransition(payment.status, target)) outcome = 'ignored_transition';
      else {
        const failureReason = target === PaymentStatus.FAILED ? (intent.last_payment_error?.message ?? 'payment failed') : null;
        await payments.applyProviderState(payment.id, { status: target, intentId: intent.id, failureReason });
        outcome = 'transitioned';
      }
      if (payment) tags = paymentWriteTags({ id: payment.id, userId: payment.user.id, stripePaymentIds: [payment.stripePaymentId, intent.id] });
    } else if (event.type === 'charge.refunded') {
      const charge = event.data.object as Stripe.Charge;
      const intentId = typeof charge.payment_intent === 'string' ? charge.payment_intent : charge.payment_intent?.id;
      payment = intentId ? await lockPayment(tx, intentId, charge.metadata?.paymentId) : null;
      if (!payment || !intentId) outcome = 'unknown_payment_intent';
      else {
        // Refund totals only grow: a late event with a smaller total changes nothing.
        const refunded = Math.min(payment.amount, Math.max(payment.amountRefunded, charge.amount_refunded));
        const full = charge.refunded || refunded >= payment.amount;
        // A refund implies the charge succeeded, whatever order the events came in.
        const status = full
          ? canTransition(payment.status, PaymentStatus.REFUNDED) ? PaymentStatus.REFUNDED : payment.status
          : canTransition(payment.status, PaymentStatus.COMPLETED) ? PaymentStatus.COMPLETED : payment.status;
        await payments.applyProviderState(payment.id, { status, intentId, amountRefunded: full ? payment.amount : refunded });
        outcome = full && status === PaymentStatus.REFUNDED ? 'transitioned' : 'refund_recorded';
        tags = paymentWriteTags({ id: payment.id, userId: payment.user.id, stripePaymentIds: [payment.stripePaymentId, intentId] });
      }
    }

    await events.recordOutcome(event.id, outcome, payment?.id ?? null);
    return { outcome, tags };
  });
}
