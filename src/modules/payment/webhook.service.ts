import type { SqlEntityManager } from '@mikro-orm/postgresql';
import type Stripe from 'stripe';
import { PaymentStatus } from './payment.entity.js';
import { canTransition } from './payment.status.js';
import { inTransaction, queryRows } from '../../core/sql.js';
import { paymentWriteTags } from '../../core/cache/index.js';

export type WebhookOutcome =
  | 'duplicate'
  | 'transitioned'
  | 'ignored_transition'
  | 'refund_recorded'
  | 'unknown_payment_intent'
  | 'ignored_type';

interface LockedPayment {
  id: number;
  user_id: number;
  amount: number;
  amount_refunded: number;
  status: PaymentStatus;
  stripe_payment_id: string | null;
}

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
async function lockPayment(tx: SqlEntityManager, intentId: string, metadataPaymentId: string | undefined): Promise<LockedPayment | null> {
  const columns = 'id, user_id, amount, amount_refunded, status, stripe_payment_id';
  const [byIntent] = await queryRows<LockedPayment>(tx, `select ${columns} from payments where stripe_payment_id = ? for update`, [intentId]);
  if (byIntent) return byIntent;
  if (!metadataPaymentId || !/^[1-9]\d{0,9}$/.test(metadataPaymentId)) return null;
  const [byMetadata] = await queryRows<LockedPayment>(
    tx,
    `select ${columns} from payments where id = ? and stripe_payment_id is null for update`,
    [Number(metadataPaymentId)],
  );
  return byMetadata ?? null;
}

/**
 * Applies one verified Stripe event, exactly once. The event id is inserted into `stripe_events` in the
 * same transaction as the change it causes; a redelivery (also a concurrent one, which waits on the
 * primary key) inserts nothing and changes nothing. Returns the cache tags to invalidate.
 */
export async function applyStripeEvent(em: SqlEntityManager, event: Stripe.Event): Promise<{ outcome: WebhookOutcome; tags: string[] }> {
  return inTransaction(em, async (tx) => {
    const fresh = await queryRows(
      tx,
      `insert into stripe_events (id, type, outcome) values (?, ?, 'received') on conflict (id) do nothing returning id`,
      [event.id, event.type],
    );
    if (fresh.length === 0) return { outcome: 'duplicate' as const, tags: [] };

    let outcome: WebhookOutcome = 'ignored_type';
    let payment: LockedPayment | null = null;
    let tags: string[] = [];
    const target = TARGET[event.type];

    if (target) {
      const intent = event.data.object as Stripe.PaymentIntent;
      payment = await lockPayment(tx, intent.id, intent.metadata?.paymentId);
      if (!payment) outcome = 'unknown_payment_intent';
      else if (!canTransition(payment.status, target)) outcome = 'ignored_transition';
      else {
        const reason = target === PaymentStatus.FAILED ? (intent.last_payment_error?.message ?? 'payment failed') : null;
        await queryRows(
          tx,
          `update payments set status = ?, failure_reason = coalesce(?, failure_reason), stripe_payment_id = ?, updated_at = now() where id = ?`,
          [target, reason, intent.id, payment.id],
        );
        outcome = 'transitioned';
      }
      if (payment) tags = paymentWriteTags({ id: payment.id, userId: payment.user_id, stripePaymentIds: [payment.stripe_payment_id, intent.id] });
    } else if (event.type === 'charge.refunded') {
      const charge = event.data.object as Stripe.Charge;
      const intentId = typeof charge.payment_intent === 'string' ? charge.payment_intent : charge.payment_intent?.id;
      payment = intentId ? await lockPayment(tx, intentId, charge.metadata?.paymentId) : null;
      if (!payment) outcome = 'unknown_payment_intent';
      else {
        // Refund totals only grow: a late event with a smaller total changes nothing.
        const refunded = Math.min(payment.amount, Math.max(payment.amount_refunded, charge.amount_refunded));
        const full = charge.refunded || refunded >= payment.amount;
        // A refund implies the charge succeeded, whatever order the events came in.
        const status = full
          ? canTransition(payment.status, PaymentStatus.REFUNDED) ? PaymentStatus.REFUNDED : payment.status
          : canTransition(payment.status, PaymentStatus.COMPLETED) ? PaymentStatus.COMPLETED : payment.status;
        await queryRows(
          tx,
          `update payments set amount_refunded = ?, status = ?, stripe_payment_id = coalesce(stripe_payment_id, ?), updated_at = now() where id = ?`,
          [full ? payment.amount : refunded, status, intentId, payment.id],
        );
        outcome = full && status === PaymentStatus.REFUNDED ? 'transitioned' : 'refund_recorded';
        tags = paymentWriteTags({ id: payment.id, userId: payment.user_id, stripePaymentIds: [payment.stripe_payment_id, intentId] });
      }
    }

    await queryRows(tx, `update stripe_events set outcome = ?, payment_id = ?, processed_at = now() where id = ?`, [
      outcome,
      payment?.id ?? null,
      event.id,
    ]);
    return { outcome, tags };
  });
}
