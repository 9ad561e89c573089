import type { SqlEntityManager } from '@mikro-orm/postgresql';
import { inTransaction, queryRows } from '../../core/sql.js';

export interface SeedOptions {
  users: number;
  paymentsPerUser: number;
}

export interface SeedResult {
  users: number;
  payments: number;
  /** Present when this run created the demo admin (an empty database). */
  adminEmail: string | null;
}

export const DEMO_ADMIN_EMAIL = 'admin@paygraph.dev';

/**
 * Deterministic demo data, inserted set-wise by PostgreSQL (1,000 x 20 takes well under a second).
 * On an empty database the first user is the ADMIN `admin@paygraph.dev`; the rest are USERs named
 * `user<n>@paygraph.dev`. Each user gets `paymentsPerUser` payments with fixed amounts, currencies,
 * statuses and timestamps (one minute apart, newest = highest id), so runs are comparable.
 */
export async function seedDemoData(em: SqlEntityManager, options: SeedOptions): Promise<SeedResult> {
  const { users, paymentsPerUser } = options;
  if (!Number.isInteger(users) || users < 0 || !Number.isInteger(paymentsPerUser) || paymentsPerUser < 0) {
    throw new Error('seed: users and payments per user must be non-negative integers');
  }
  return inTransaction(em, async (tx) => {
    const [{ start, empty }] = await queryRows<{ start: number; empty: boolean }>(
      tx,
      'select coalesce(max(id), 0)::int as start, count(*) = 0 as empty from users',
    ) as [{ start: number; empty: boolean }];
    await queryRows(
      tx,
      `with new_users as (
         insert into users (email, name, role, is_active, created_at, updated_at)
         select case when ? and s = 1 then ? else format('user%s@paygraph.dev', ? + s) end,
                case when ? and s = 1 then 'Demo Admin' else format('Demo User %s', ? + s) end,
                case when ? and s = 1 then 'ADMIN' else 'USER' end,
                (? + s) % 10 <> 0,
                timestamptz '2026-01-01 00:00:00+00' + make_interval(hours => ? + s),
                timestamptz '2026-01-01 00:00:00+00' + make_interval(hours => ? + s)
         from generate_series(1, ?) as s
         order by s
         returning id
       )
       insert into payments (user_id, amount, currency, status, stripe_payment_id, description, created_at, updated_at)
       select u.id,
              100 + (u.id * 7919 + k * 104729) % 99900,
              (array['usd', 'eur', 'gbp'])[1 + (u.id + k) % 3],
              (array['COMPLETED', 'COMPLETED', 'COMPLETED', 'PENDING', 'FAILED', 'REFUNDED', 'CANCELED'])[1 + (u.id * 3 + k) % 7],
              format('pi_demo_%s_%s', u.id, k),
              format('Demo payment %s of user %s', k, u.id),
              timestamptz '2026-02-01 00:00:00+00' + make_interval(mins => u.id * 1000 + k),
              timestamptz '2026-02-01 00:00:00+00' + make_interval(mins => u.id * 1000 + k)
       from new_users u cross join generate_series(1, ?) as k
       order by u.id, k`,
      [empty, DEMO_ADMIN_EMAIL, start, empty, start, empty, start, start, start, users, paymentsPerUser],
    );
    return { users, payments: users * paymentsPerUser, adminEmail: empty && users > 0 ? DEMO_ADMIN_EMAIL : null };
  });
}
