/**
 * Invalidation tags, in one place so reads and writes cannot disagree on a spelling. A write bumps
 * every tag whose cached reads it may change.
 */
export const cacheTags = {
  user: (id: number) => `user:${id}`,
  payment: (id: number) => `payment:${id}`,
  paymentByStripeId: (stripePaymentId: string) => `payment:stripe:${stripePaymentId}`,
  /** Anything aggregated over a user's payments: counts, stats. */
  paymentsOfUser: (userId: number) => `payments:user:${userId}`,
};

/** The tags a change to this payment touches (pass the Stripe ids it had before and after). */
export function paymentWriteTags(payment: { id: number; userId: number; stripePaymentIds: (string | null | undefined)[] }): string[] {
  return [
    cacheTags.payment(payment.id),
    cacheTags.paymentsOfUser(payment.userId),
    ...payment.stripePaymentIds.filter((s): s is string => !!s).map(cacheTags.paymentByStripeId),
  ];
}
