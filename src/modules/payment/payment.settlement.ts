import type { SqlEntityManager } from '@mikro-orm/postgresql';
import type Stripe from 'stripe';
import { Payment, PaymentStatus } from './payment.entity.js';
import { canTransition } from './payment.status.js';
import type { WriteChange } from '../../core/cache/index.js';
import { AuditEntityType, AuditLogEntry } from '../audit/audit.entity.js';
import type { AuditContext } from '../audit/audit.js';

/** What Stripe says about a payment: from a webhook event, or from a PaymentIntent the reconciler fetched. */
export type ProviderObservation =
  | { kind: 'status'; intentId: string; status: PaymentStatus; failureReason: string | null }
  | { kind: 'refund'; intentId: string; refundedTotal: number; fully: boolean };

export type SettlementOutcome = 'transitioned' | 'ignored_transition' | 'refund_recorded' | 'unchanged';

/**
 * The status a PaymentIntent's own status means here; null for the states that change nothing
 * (`requires_payment_method` without an error, `requires_confirmation`: still waiting to be paid).
 */
export function statusOfIntent(intent: Pick<Stripe.PaymentIntent, 'status' | 'last_payment_error'>): { status: PaymentStatus; failureReason: string | null } | null {
  switch (intent.status) {
    case 'succeeded':
      return { status: PaymentStatus.COMPLETED, failureReason: null };
    case 'processing':
    case 'requires_capture':
      return { status: PaymentStatus.PROCESSING, failureReason: null };
    case 'requires_action':
      return { status: PaymentStatus.REQUIRES_ACTION, failureReason: null };
    case 'canceled':
      return { status: PaymentStatus.CANCELED, failureReason: null };
    case 'requires_payment_method':
      return intent.last_payment_error ? { status: PaymentStatus.FAILED, failureReason: intent.last_payment_error.message ?? 'payment failed' } : null;
    default:
      return null;
  }
}

/** Everything a fetched PaymentIntent (with `latest_charge` expanded) says: its status, and its refunds. */
export function observationsOfIntent(intent: Stripe.PaymentIntent): ProviderObservation[] {
  const observations: ProviderObservation[] = [];
  const state = statusOfIntent(intent);
  if (state) observations.push({ kind: 'status', intentId: intent.id, ...state });
  const charge = typeof intent.latest_charge === 'object' ? intent.latest_charge : null;
  if (charge && charge.amount_refunded > 0) {
    observations.push({ kind: 'refund', intentId: intent.id, refundedTotal: charge.amount_refunded, fully: charge.refunded });
  }
  return observations;
}

/**
 * Applies one observation to a payment locked (FOR UPDATE) in the transaction `tx`: through the
 * status machine, so a late or repeated observation changes nothing, and refund totals only grow. A
 * change is written with its audit entry in the same transaction. Returns what it changed (nothing when nothing did).
 */
export async function settle(
  tx: SqlEntityManager,
  payment: Payment,
  observation: ProviderObservation,
  actor: AuditContext,
): Promise<{ outcome: SettlementOutcome; change: WriteChange }> {
  // The intent id too: settlement links it when the payment did not have it (the event's metadata
  // named the payment), and that link is part of what the audit entry shows.
  const before = { status: payment.status, failureReason: payment.failureReason ?? null, amountRefunded: payment.amountRefunded, stripePaymentId: payment.stripePaymentId ?? null };
  const linked = { stripePaymentId: payment.stripePaymentId ?? observation.intentId };
  let after: typeof before;
  let outcome: SettlementOutcome;
  if (observation.kind === 'status') {
    if (!canTransition(payment.status, observation.status)) return { outcome: 'ignored_transition', change: {} };
    after = { ...before, ...linked, status: observation.status, failureReason: observation.failureReason ?? before.failureReason };
    outcome = 'transitioned';
  } else {
    const refunded = Math.min(payment.amount, Math.max(payment.amountRefunded, observation.refundedTotal));
    const full = observation.fully || refunded >= payment.amount;
    // A refund implies the charge succeeded, whatever order the events came in.
    const status = full
      ? canTransition(payment.status, PaymentStatus.REFUNDED) ? PaymentStatus.REFUNDED : payment.status
      : canTransition(payment.status, PaymentStatus.COMPLETED) ? PaymentStatus.COMPLETED : payment.status;
    after = { ...before, ...linked, status, amountRefunded: full ? payment.amount : refunded };
    outcome = full && status === PaymentStatus.REFUNDED ? 'transitioned' : 'refund_recorded';
  }
  const changed = (Object.keys(after) as (keyof typeof after)[]).filter((k) => after[k] !== before[k]);
  if (changed.length === 0) return { outcome: outcome === 'refund_recorded' ? 'unchanged' : outcome, change: {} };

  await tx.getRepository(Payment).applyProviderState(payment.id, {
    status: after.status,
    intentId: observation.intentId,
    failureReason: after.failureReason,
    amountRefunded: after.amountRefunded,
  });
  await tx.getRepository(AuditLogEntry).append(actor, [
    {
      entityType: AuditEntityType.PAYMENT,
      entityId: payment.id,
      action: observation.kind === 'refund' && after.status === before.status ? 'refund_recorded' : 'status_changed',
      before: Object.fromEntries(changed.map((k) => [k, before[k]])),
      after: Object.fromEntries(changed.map((k) => [k, after[k]])),
    },
  ]);
  return { outcome, change: { payments: [{ id: payment.id, userId: payment.user.id, stripePaymentIds: [payment.stripePaymentId, observation.intentId] }] } };
}
