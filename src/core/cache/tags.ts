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

/**
 * What a committed write changed, as the services that write describe it: the one value the caches
 * (which tags to bump), the replicas' read-your-writes marks (whose reads must wait for it) and the
 * realtime bus (which payments to publish) all read. Tags are made from it here, never parsed back.
 */
export interface WriteChange {
  /** Users whose row changed. */
  users?: readonly number[];
  /** Payments that changed, each with its owner and the Stripe ids it had before and after. */
  payments?: readonly { id: number; userId: number; stripePaymentIds?: readonly (string | null | undefined)[] }[];
  /** Users whose payments' aggregates changed while no payment of theirs did (a deleted user's). */
  paymentsOfUsers?: readonly number[];
}

/** Two changes as one (a run that settles several payments in one transaction). */
export function mergeChanges(a: WriteChange, b: WriteChange): WriteChange {
  return {
    users: [...(a.users ?? []), ...(b.users ?? [])],
    payments: [...(a.payments ?? []), ...(b.payments ?? [])],
    paymentsOfUsers: [...(a.paymentsOfUsers ?? []), ...(b.paymentsOfUsers ?? [])],
  };
}

/** Whether a change changed anything. */
export function isEmptyChange(change: WriteChange): boolean {
  return !change.users?.length && !change.payments?.length && !change.paymentsOfUsers?.length;
}

/** The tags a change bumps: every tag whose cached reads it may change. */
export function writeTags(change: WriteChange): string[] {
  const tags = new Set<string>();
  for (const id of change.users ?? []) tags.add(cacheTags.user(id)).add(cacheTags.users);
  for (const id of change.paymentsOfUsers ?? []) tags.add(cacheTags.paymentsOfUser(id));
  for (const payment of change.payments ?? []) {
    tags.add(cacheTags.payment(payment.id)).add(cacheTags.paymentsOfUser(payment.userId)).add(cacheTags.payments);
    for (const stripeId of payment.stripePaymentIds ?? []) if (stripeId) tags.add(cacheTags.paymentByStripeId(stripeId));
  }
  return [...tags];
}

/** The users whose own data a change touched (their rows, or their payments): their next reads must see it. */
export function writeOwners(change: WriteChange): number[] {
  return [...new Set([...(change.users ?? []), ...(change.paymentsOfUsers ?? []), ...(change.payments ?? []).map((p) => p.userId)])];
}
