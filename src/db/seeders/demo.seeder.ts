import type { SqlEntityManager } from '@mikro-orm/postgresql';
import { inTransaction, queryRows } from '../../core/sql.js';

export interface SeedOptions {
  users: number;
  paymentsPerUser: number;
  /** One more user, after the others, with this many payments (a very large account); none when 0 or unset. */
  largeUserPayments?: number;
  /** Told how far a seed of more than one batch has got. */
  progress?: (line: string) => void;
}

export interface SeedResult {
  users: number;
  payments: number;
  /** Present when this run created the demo admin (an empty database). */
  adminEmail: string | null;
}

export const DEMO_ADMIN_EMAIL = 'admin@paygraph.dev';

/** Payments one transaction of the seed inserts at most: a seed of millions commits as it goes. */
const BATCH_PAYMENTS = 250_000;

/**
 * Deterministic demo data, inserted set-wise by PostgreSQL (1,000 x 20 takes well under a second; 5.5
 * million payments, a few minutes: see docs/scaling.md). On an empty database the first user is the
 * ADMIN `admin@paygraph.dev`; the rest are USERs named `user<n>@paygraph.dev`. Each user gets
 * `paymentsPerUser` payments with fixed amounts, currencies, statuses and timestamps (one minute apart,
 * newest = highest id), so runs are comparable. Up to BATCH_PAYMENTS payments in one transaction (all
 * or nothing); a larger seed commits batch by batch, each of whole users (or of one large user's
 * payments), so an interrupted one leaves whole users behind and can be run again for more.
 */
export async function seedDemoData(em: SqlEntityManager, options: SeedOptions): Promise<SeedResult> {
  const { users, paymentsPerUser } = options;
  const large = options.largeUserPayments ?? 0;
  for (const n of [users, paymentsPerUser, large]) {
    if (!Number.isInteger(n) || n < 0) throw new Error('seed: users and payments per user must be non-negative integers');
  }
  const [{ start, empty }] = (await queryRows<{ start: number; empty: boolean }>(em, 'select coalesce(max(id), 0)::int as start, count(*) = 0 as empty from users')) as [
    { start: number; empty: boolean },
  ];
  const usersPerBatch = Math.max(1, Math.floor(BATCH_PAYMENTS / Math.max(1, paymentsPerUser)));
  const batches = Math.ceil(users / usersPerBatch) + Math.ceil(large / BATCH_PAYMENTS);
  let done = 0;
  const step = async (work: (tx: SqlEntityManager) => Promise<unknown>) => {
    await inTransaction(em, work);
    if (batches > 1) options.progress?.(`seed: ${++done} of ${batches} batches`);
  };
  for (let first = 1; first <= users; first += usersPerBatch) {
    await step((tx) => insertUsers(tx, { start, empty, from: first, to: Math.min(users, first + usersPerBatch - 1), paymentsPerUser }));
  }
  if (large > 0) {
    const owner = start + users + 1;
    await step(async (tx) => {
      await insertUsers(tx, { start, empty, from: users + 1, to: users + 1, paymentsPerUser: 0 });
      await insertPayments(tx, owner, 1, Math.min(large, BATCH_PAYMENTS));
    });
    for (let k = BATCH_PAYMENTS + 1; k <= large; k += BATCH_PAYMENTS) await step((tx) => insertPayments(tx, owner, k, Math.min(large, k + BATCH_PAYMENTS - 1)));
  }
  const total = users + (large > 0 ? 1 : 0);
  return { users: total, payments: users * paymentsPerUser + large, adminEmail: empty && total > 0 ? DEMO_ADMIN_EMAIL : null };
}

/** Users `start + from` .. `start + to`, each with payments 1..paymentsPerUser (see `insertPayments`). */
async function insertUsers(tx: SqlEntityManager, o: { start: number; empty: boolean; from: number; to: number; paymentsPerUser: number }): Promise<void> {
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
       from generate_series(?::int, ?::int) as s
       order by s
       returning id
     )
     ${PAYMENT_INSERT} from new_users u cross join generate_series(1, ?) as k
     order by u.id, k`,
    [o.empty, DEMO_ADMIN_EMAIL, o.start, o.empty, o.start, o.empty, o.start, o.start, o.start, o.from, o.to, o.paymentsPerUser],
  );
}

/** Payments `from`..`to` of one user, as `insertUsers` makes them. */
async function insertPayments(tx: SqlEntityManager, userId: number, from: number, to: number): Promise<void> {
  await queryRows(tx, `${PAYMENT_INSERT} from (select ?::int as id) u cross join generate_series(?::int, ?::int) as k order by k`, [userId, from, to]);
}

/** The insert of payment k of user u (fixed amounts, currencies, statuses; one minute apart). */
const PAYMENT_INSERT = `insert into payments (user_id, amount, currency, status, stripe_payment_id, description, created_at, updated_at)
     select u.id,
            100 + (u.id::bigint * 7919 + k::bigint * 104729) % 99900,
            (array['usd', 'eur', 'gbp'])[1 + (u.id + k) % 3],
            (array['COMPLETED', 'COMPLETED', 'COMPLETED', 'PENDING', 'FAILED', 'REFUNDED', 'CANCELED'])[1 + (u.id * 3 + k) % 7],
            format('pi_demo_%s_%s', u.id, k),
            format('Demo payment %s of user %s', k, u.id),
            timestamptz '2026-02-01 00:00:00+00' + make_interval(mins => u.id * 1000 + k),
            timestamptz '2026-02-01 00:00:00+00' + make_interval(mins => u.id * 1000 + k)`;
