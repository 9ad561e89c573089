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
  /** Reads over all users (lists, counts, a search by email): every user write bumps it. */
  users: 'users',
  /** Reads over all payments (the ADMIN list and its count): every payment write bumps it. */
  payments: 'payments',
};

/** The tags a write to this user touches. */
export function userWriteTags(userId: number): string[] {
  return [cacheTags.user(userId), cacheTags.users];
}

/** The tags a change to this payment touches (pass the Stripe ids it had before and after). */
export function paymentWriteTags(payment: { id: number; userId: number; stripePaymentIds: (string | null | undefined)[] }): string[] {
  return [
    cacheTags.payment(payment.id),
    cacheTags.paymentsOfUser(payment.userId),
    cacheTags.payments,
    ...payment.stripePaymentIds.filter((s): s is string => !!s).map(cacheTags.paymentByStripeId),
  ];
}
