import { PaymentStatus } from './payment.entity.js';

const { PENDING, REQUIRES_ACTION, PROCESSING, COMPLETED, FAILED, REFUNDED, CANCELED } = PaymentStatus;

/**
 * The payment status machine. Stripe's events can arrive late, twice or out of order, and the
 * reconciliation job may see a state before its event arrives; a transition not listed here is
 * ignored, so a payment never moves backwards: REFUNDED is final, CANCELED moves on only to what
 * Stripe says it charged (COMPLETED, REFUNDED), COMPLETED only moves on to REFUNDED, PROCESSING
 * ("waiting for the bank") never goes back to waiting for the customer, and a refund seen before the
 * success it implies still ends REFUNDED. FAILED may start again (a customer retries with another card).
 */
export const ALLOWED_TRANSITIONS: Readonly<Record<PaymentStatus, readonly PaymentStatus[]>> = {
  [PENDING]: [REQUIRES_ACTION, PROCESSING, COMPLETED, FAILED, CANCELED, REFUNDED],
  [REQUIRES_ACTION]: [PROCESSING, COMPLETED, FAILED, CANCELED, REFUNDED],
  [PROCESSING]: [COMPLETED, FAILED, CANCELED, REFUNDED],
  [FAILED]: [REQUIRES_ACTION, PROCESSING, COMPLETED, CANCELED, REFUNDED],
  [COMPLETED]: [REFUNDED],
  [REFUNDED]: [],
  // Canceled here but charged at Stripe (a cancel that lost the race there: Stripe refuses to cancel
  // an intent that succeeded, and never un-cancels one, so a success or a refund reported after a
  // CANCELED is Stripe's truth): a payment Stripe charged is never left CANCELED.
  [CANCELED]: [COMPLETED, REFUNDED],
};

export function canTransition(from: PaymentStatus, to: PaymentStatus): boolean {
  return ALLOWED_TRANSITIONS[from].includes(to);
}

/**
 * Statuses in which the customer has not paid yet: the payment may still be canceled, it expires when
 * left so for PAYMENT_EXPIRE_AFTER_SECONDS, and a retried createPayment hands out its client secret
 * (the customer can still act on it: pay, or finish 3-D Secure).
 */
export const CANCELABLE: readonly PaymentStatus[] = [PENDING, REQUIRES_ACTION];

/** Statuses Stripe may still move on by itself: what reconciliation asks Stripe about. */
export const UNSETTLED: readonly PaymentStatus[] = [PENDING, REQUIRES_ACTION, PROCESSING];
