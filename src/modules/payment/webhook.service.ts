import type { SqlEntityManager } from '@mikro-orm/postgresql';
import type Stripe from 'stripe';
import { Payment, PaymentStatus } from './payment.entity.js';
import { StripeEvent } from './stripe-event.entity.js';
import { settle, type ProviderObservation, type SettlementOutcome } from './payment.settlement.js';
import { stripeActor } from '../audit/audit.js';
import { inTransaction } from '../../core/sql.js';
import type { WriteChange } from '../../core/cache/index.js';

export type WebhookOutcome = SettlementOutcome | 'duplicate' | 'unknown_payment_intent' | 'ignored_type';

/** The status each PaymentIntent event announces. */
const TARGET: Partial<Record<string, PaymentStatus>> = {
  'payment_intent.succeeded': PaymentStatus.COMPLETED,
  'payment_intent.payment_failed': PaymentStatus.FAILED,
  'payment_intent.canceled': PaymentStatus.CANCELED,
  'payment_intent.processing': PaymentStatus.PROCESSING,
  'payment_intent.requires_action': PaymentStatus.REQUIRES_ACTION,
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

/** What the event says about its payment, and which intent it concerns; null for event types we ignore. */
function observationOf(event: Stripe.Event): { intentId: string | undefined; metadataPaymentId: string | undefined; observation: (intentId: string) => ProviderObservation } | null {
  const target = Object.hasOwn(TARGET, event.type) ? TARGET[event.type] : undefined;
  if (target) {
    const intent = event.data.object as Stripe.PaymentIntent;
    const failureReason = target === PaymentStatus.FAILED ? (intent.last_payment_error?.message ?? 'payment failed') : null;
    return { intentId: intent.id, metadataPaymentId: intent.metadata?.paymentId, observation: (intentId) => ({ kind: 'status', intentId, status: target, failureReason }) };
  }
  if (event.type === 'charge.refunded') {
    const charge = event.data.object as Stripe.Charge;
    const intentId = typeof charge.payment_intent === 'string' ? charge.payment_intent : charge.payment_intent?.id;
    return {
      intentId,
      metadataPaymentId: charge.metadata?.paymentId,
      observation: (id) => ({ kind: 'refund', intentId: id, refundedTotal: charge.amount_refunded, fully: charge.refunded }),
    };
  }
  return null;
}

/**
 * Applies one verified Stripe event, exactly once. The event id is inserted into `stripe_events` in the
 * same transaction as the change it causes (and the change's audit entry, actor STRIPE); a redelivery
 * (also a concurrent one, which waits on the primary key) inserts nothing and changes nothing. The
 * change itself goes through the same settlement as reconciliation (`payment.settlement.ts`).
 * Returns what it changed, for the caches, the replicas' marks and the event bus.
 */
export async function applyStripeEvent(em: SqlEntityManager, event: Stripe.Event): Promise<{ outcome: WebhookOutcome; change: WriteChange }> {
  return inTransaction(em, async (tx) => {
    const events = tx.getRepository(StripeEvent);
    if (!(await events.recordReceived(event.id, event.type))) return { outcome: 'duplicate' as const, change: {} };

    let outcome: WebhookOutcome = 'ignored_type';
    let payment: Payment | null = null;
    let change: WriteChange = {};
    const seen = observationOf(event);
    if (seen) {
      payment = seen.intentId ? await lockPayment(tx, seen.intentId, seen.metadataPaymentId) : null;
      if (!payment || !seen.intentId) outcome = 'unknown_payment_intent';
      else ({ outcome, change } = await settle(tx, payment, seen.observation(seen.intentId), stripeActor(event.id)));
    }
    await events.recordOutcome(event.id, outcome, payment?.id ?? null);
    return { outcome, change };
  });
}
