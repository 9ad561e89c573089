import { PaymentStatus } from './payment.entity.js';

const { PENDING, COMPLETED, FAILED, REFUNDED, CANCELED } = PaymentStatus;

/**
 * The payment status machine. Stripe's events can arrive late, twice or out of order; a transition
 * not listed here is ignored, so a payment never moves backwards: REFUNDED and CANCELED are final,
 * COMPLETED only moves on to REFUNDED, and a refund seen before the success it implies still ends
 * REFUNDED. FAILED may still complete (a customer retries with another card).
 */
export const ALLOWED_TRANSITIONS: Readonly<Record<PaymentStatus, readonly PaymentStatus[]>> = {
  [PENDING]: [COMPLETED, FAILED, CANCELED, REFUNDED],
  [FAILED]: [COMPLETED, CANCELED, REFUNDED],
  [COMPLETED]: [REFUNDED],
  [REFUNDED]: [],
  [CANCELED]: [],
};

export function canTransition(from: PaymentStatus, to: PaymentStatus): boolean {
  return ALLOWED_TRANSITIONS[from].includes(to);
}
