import DataLoader from 'dataloader';
import type { SqlEntityManager } from '@mikro-orm/postgresql';
import { Payment } from './payment.entity.js';
import type { PaymentCountKey, PaymentPageRow, PaymentRow, PaymentStatsRow, UserPaymentsKey } from './payment.repository.js';
import type { UserRow } from '../user/user.repository.js';
import { cacheTags, type QueryCache } from '../../core/cache/index.js';
import { tracedBatch } from '../../core/tracing.js';

function pageKey(k: UserPaymentsKey): string {
  const after = k.after ? `${k.after.createdAtMs}.${k.after.id}` : '';
  return `${k.userId}|${k.first}|${k.probe ? '+' : ''}|${k.status ?? ''}|${after}|${k.fields.join(',')}`;
}

/**
 * Payments per user for one request. Keys carry every argument that changes the SQL, so users asked
 * for with different `first`/`after`/`status` still share one statement per batch. Pages and
 * aggregates (counts, stats) also go through the query cache under the user's `payments:user:<id>`
 * tag, which every write to one of the user's payments bumps.
 */
export function createPaymentLoaders(cache: QueryCache, primeUsers: (rows: Iterable<UserRow>) => void) {
  const payments = (em: SqlEntityManager) => em.getRepository(Payment);
  const userPaymentsTag = ([userId]: readonly [number, ...unknown[]]) => [cacheTags.paymentsOfUser(userId)];
  return {
    /**
     * Payments by id (federation's `_entities`): one statement per batch, joined to their users, whose
     * rows are primed (read under the `users` tag, which the load watches), as `payment(id)` does.
     */
    paymentById: new DataLoader<number, PaymentRow | null>(
      tracedBatch('paymentById', (ids: readonly number[]) =>
        cache.getOrLoadMany('paymentById', ids.map((id) => [id] as [number]), { tags: ([id]) => [cacheTags.payment(id)], watch: () => [cacheTags.users] }, async (missing, em) => {
          const found = await payments(em).findRowsWithUsers(missing.map(([id]) => id));
          primeUsers(found.users);
          const byId = new Map(found.payments.map((row) => [row.id, row]));
          return missing.map(([id]) => byId.get(id) ?? null);
        }),
      ),
      { maxBatchSize: 1000 },
    ),
    /** Up to `first` rows per key, or `first + 1` when probing (the extra row says a next page exists). */
    paymentsByUserId: new DataLoader<UserPaymentsKey, PaymentPageRow[], string>(
      tracedBatch('paymentsByUserId', (keys: readonly UserPaymentsKey[]) =>
        cache.getOrLoadMany(
          'paymentsByUserId',
          keys.map((k) => [k.userId, k.first, k.probe, k.after?.createdAtMs ?? null, k.after?.id ?? null, k.status, k.fields] as const),
          { tags: userPaymentsTag },
          (missing, em) =>
            payments(em).findPagesByUser(
              missing.map(([userId, first, probe, afterMs, afterId, status, fields]) => ({
                userId,
                first,
                probe,
                after: afterMs === null ? null : { createdAtMs: afterMs, id: afterId! },
                status,
                fields,
              })),
            ),
        ),
      ),
      { cacheKeyFn: pageKey, maxBatchSize: 1000 },
    ),
    countPaymentsByUserId: new DataLoader<PaymentCountKey, number, string>(
      tracedBatch('countPaymentsByUserId', (keys: readonly PaymentCountKey[]) =>
        cache.getOrLoadMany(
          'countPaymentsByUserId',
          keys.map((k) => [k.userId, k.status] as [number, PaymentCountKey['status']]),
          { tags: userPaymentsTag },
          (missing, em) => payments(em).countByUser(missing.map(([userId, status]) => ({ userId, status }))),
        ),
      ),
      { cacheKeyFn: (k) => `${k.userId}|${k.status ?? ''}`, maxBatchSize: 1000 },
    ),
    paymentStatsByUserId: new DataLoader<number, PaymentStatsRow[]>(
      tracedBatch('paymentStatsByUserId', (userIds: readonly number[]) =>
        cache.getOrLoadMany('paymentStatsByUserId', userIds.map((id) => [id] as [number]), { tags: userPaymentsTag }, (missing, em) =>
          payments(em).statsByUser(missing.map(([id]) => id)),
        ),
      ),
      { maxBatchSize: 1000 },
    ),
  };
}
