import { PaymentStatus } from './payment.entity.js';

const { PENDING, REQUIRES_ACTION, PROCESSING, COMPLETED, FAILED, REFUNDED, CANCELED } = PaymentStatus;

/**
 * The payment status machine. Stripe's events can arrive late, twice or out of order, and the
 * reconciliation job may see a state before its event arrives; a transition not listed here is
 * ignored, so a payment never moves backwards: REFUNDED and CANCELED are final, COMPLETED only moves
 * on to REFUNDED, PROCESSING ("waiting for the bank") never goes back to waiting for the customer, and
 * a refund seen before the success it implies still ends REFUNDED. FAILED may start again (a customer
 * retries with another card).
 */
export const ALLOWED_TRANSITIONS: Readonly<Record<PaymentStatus, readonly PaymentStatus[]>> = {
  [PENDING]: [REQUIRES_ACTION, PROCESSING, COMPLETED, FAILED, CANCELED, REFUNDED],
  [REQUIRES_ACTION]: [PROCESSING, COMPLETED, FAILED, CANCELED, REFUNDED],
  [PROCESSING]: [COMPLETED, FAILED, CANCELED, REFUNDED],
  [FAILED]: [REQUIRES_ACTION, PROCESSING, COMPLETED, CANCELED, REFUNDED],
  [COMPLETED]: [REFUNDED],
  [REFUNDED]: [],
  [CANCELED]: [],
};

export function canTransition(from: PaymentStatus, to: PaymentStatus): boolean {
  return ALLOWED_TRANSITIONS[from].includes(to);
}

/** Statuses in which the customer has not paid yet and the payment may still be canceled. */
export const CANCELABLE: readonly PaymentStatus[] = [PENDING, REQUIRES_ACTION];

/** Statuses Stripe may still move on by itself: what reconciliation asks Stripe about. */
export const UNSETTLED: readonly PaymentStatus[] = [PENDING, REQUIRES_ACTION, PROCESSING];
