import DataLoader from 'dataloader';
import type { SqlEntityManager } from '@mikro-orm/postgresql';
import { Payment } from './payment.entity.js';
import type { PaymentCountKey, PaymentRow, UserPaymentsKey } from './payment.repository.js';

function pageKey(k: UserPaymentsKey): string {
  const after = k.after ? `${k.after.createdAt.getTime()}.${k.after.id}` : '';
  return `${k.userId}|${k.first}|${k.status ?? ''}|${after}`;
}

/**
 * Payments per user for one request. Keys carry every argument that changes the SQL, so users asked
 * for with different `first`/`after`/`status` still share one statement per batch.
 */
export function createPaymentLoaders(em: SqlEntityManager) {
  const payments = em.getRepository(Payment);
  return {
    /** Up to `first + 1` rows per key (the extra row says whether a next page exists). */
    paymentsByUserId: new DataLoader<UserPaymentsKey, PaymentRow[], string>((keys) => payments.findPagesByUser(keys), {
      cacheKeyFn: pageKey,
      maxBatchSize: 1000,
    }),
    countPaymentsByUserId: new DataLoader<PaymentCountKey, number, string>((keys) => payments.countByUser(keys), {
      cacheKeyFn: (k) => `${k.userId}|${k.status ?? ''}`,
      maxBatchSize: 1000,
    }),
  };
}
