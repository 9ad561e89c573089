import { EntityRepository } from '@mikro-orm/postgresql';
import { Payment, PaymentStatus } from './payment.entity.js';
import { toUserRow, userColumns, type UserRow } from '../user/user.repository.js';
import { pgArray, queryRows } from '../../core/sql.js';
import type { PaymentCursor } from '../../core/pagination.js';
import { ALL_PAYMENT_FIELDS, columnsFor } from './payment.fields.js';
import { cached, cacheTags } from '../../core/cache/index.js';

/**
 * A payment as list-sized reads return it: the driver's own row object, its columns aliased to these
 * keys (no copy, no Date per row: `createdAt` is epoch milliseconds, which the DateTime scalar
 * serialises as it does a Date).
 */
export interface PaymentRow {
  id: number;
  userId: number;
  amount: number;
  currency: string;
  status: PaymentStatus;
  stripePaymentId: string | null;
  description: string | null;
  failureReason: string | null;
  amountRefunded: number;
  createdAt: number;
}

/** One user's page of payments: every argument that changes the SQL is part of the key. */
export interface UserPaymentsKey {
  userId: number;
  first: number;
  after: PaymentCursor | null;
  status: PaymentStatus | null;
  /** Columns the page must carry besides id (sorted `PaymentRow` keys; see payment.fields.ts). */
  fields: readonly string[];
  /** Fetch `first + 1` rows, so that the connection can tell whether a next page exists. */
  probe: boolean;
}

/** A row of a user's page: id, plus the columns its key asked for. */
export type PaymentPageRow = Pick<PaymentRow, 'id'> & Partial<PaymentRow>;

export interface PaymentCountKey {
  userId: number;
  status: PaymentStatus | null;
}

/** Count and sum of one user's payments in one status and currency. */
export interface PaymentStatsRow {
  status: PaymentStatus;
  currency: string;
  count: number;
  totalAmount: number;
}

export interface PaymentListFilter {
  status?: PaymentStatus | null;
  userId?: number | null;
}

/** The full select list of `payments p`, aliased to `PaymentRow` keys. */
export const PAYMENT_COLUMNS = columnsFor(ALL_PAYMENT_FIELDS).join(', ');

type RawRow = Record<string, unknown>;

export function paymentEntityToRow(payment: Payment): PaymentRow {
  return {
    id: payment.id,
    userId: payment.user.id,
    amount: payment.amount,
    currency: payment.currency,
    status: payment.status,
    stripePaymentId: payment.stripePaymentId ?? null,
    description: payment.description ?? null,
    failureReason: payment.failureReason ?? null,
    amountRefunded: payment.amountRefunded,
    createdAt: payment.createdAt.getTime(),
  };
}

/** The payment half of a joined row (the user's columns stay behind). */
function toPaymentRow(r: RawRow): PaymentRow {
  return {
    id: r.id as number,
    userId: r.userId as number,
    amount: r.amount as number,
    currency: r.currency as string,
    status: r.status as PaymentStatus,
    stripePaymentId: r.stripePaymentId as string | null,
    description: r.description as string | null,
    failureReason: r.failureReason as string | null,
    amountRefunded: r.amountRefunded as number,
    createdAt: r.createdAt as number,
  };
}

function filterSql(filter: PaymentListFilter): { where: string[]; params: unknown[] } {
  const where: string[] = [];
  const params: unknown[] = [];
  if (filter.status) {
    where.push('p.status = ?');
    params.push(filter.status);
  }
  if (filter.userId != null) {
    where.push('p.user_id = ?');
    params.push(filter.userId);
  }
  return { where, params };
}

const NEWEST_FIRST = { createdAt: 'desc', id: 'desc' } as const;

export class PaymentRepository extends EntityRepository<Payment> {
  // --- Entity reads with `populate` (the original design note's repository, camelCased) ---

  /** A payment with its user, one joined statement. */
  getPaymentWithUser(id: number): Promise<Payment | null> {
    return this.findOne({ id }, { populate: ['user'], strategy: 'joined' });
  }

  /** A user's payments, newest first, each with its user, in one joined statement. */
  getUserPaymentsWithUser(userId: number, skip = 0, limit = 100): Promise<Payment[]> {
    return this.find(
      { user: userId },
      { populate: ['user'], strategy: 'joined', orderBy: NEWEST_FIRST, offset: skip, limit },
    );
  }

  getUserPaymentsByStatus(userId: number, status: PaymentStatus, skip = 0, limit = 100): Promise<Payment[]> {
    return this.find(
      { user: userId, status },
      { populate: ['user'], strategy: 'joined', orderBy: NEWEST_FIRST, offset: skip, limit },
    );
  }

  getPaymentsByStatus(status: PaymentStatus, skip = 0, limit = 100): Promise<Payment[]> {
    return this.find(
      { status },
      { populate: ['user'], strategy: 'joined', orderBy: NEWEST_FIRST, offset: skip, limit },
    );
  }

  getPaymentByStripeId(stripePaymentId: string): Promise<Payment | null> {
    return this.findOne({ stripePaymentId }, { populate: ['user'], strategy: 'joined' });
  }

  @cached<[number, (PaymentStatus | null)?]>({ tags: ([userId]) => [cacheTags.paymentsOfUser(userId)] })
  countUserPayments(userId: number, status?: PaymentStatus | null): Promise<number> {
    return this.count(status ? { user: userId, status } : { user: userId });
  }

  // --- Plain-row reads for GraphQL lists and loaders ---

  /**
   * One payment with its user, as rows in one joined statement (what `payment(id)` and
   * `paymentByStripeId` serve; the entity reads above hydrate, which costs more than the SQL here).
   */
  async findRowWithUser(where: { id: number } | { stripePaymentId: string }): Promise<{ payment: PaymentRow; user: UserRow } | null> {
    const [condition, param] = 'id' in where ? ['p.id = ?', where.id] : ['p.stripe_payment_id = ?', where.stripePaymentId];
    const { payments, users } = await this.selectWithUsers(`where ${condition}`, [param], '');
    return payments[0] ? { payment: payments[0], user: users[0]! } : null;
  }

  /**
   * One keyset page of payments (newest first) with each payment's user, in one statement. Asks for
   * `first + 1` rows so the caller knows whether another page exists.
   */
  async findPageWithUsers(args: {
    first: number;
    after: PaymentCursor | null;
    filter: PaymentListFilter;
  }): Promise<{ payments: PaymentRow[]; users: UserRow[] }> {
    const { where, params } = filterSql(args.filter);
    if (args.after) {
      where.push('(p.created_at, p.id) < (?::timestamptz, ?)');
      params.push(new Date(args.after.createdAtMs).toISOString(), args.after.id);
    }
    params.push(args.first + 1);
    return this.selectWithUsers(where.length ? `where ${where.join(' and ')}` : '', params, 'order by p.created_at desc, p.id desc limit ?');
  }

  /** Payment rows joined to their users' rows; each user once, in order of first appearance. */
  private async selectWithUsers(whereSql: string, params: unknown[], tailSql: string): Promise<{ payments: PaymentRow[]; users: UserRow[] }> {
    const raw = await queryRows<RawRow>(
      this.getEntityManager(),
      `select ${PAYMENT_COLUMNS}, ${userColumns('u', 'u_')}
       from payments p join users u on u.id = p.user_id
       ${whereSql}
       ${tailSql}`,
      params,
    );
    const users = new Map<number, UserRow>();
    const payments = raw.map((r) => {
      if (!users.has(r.u_id as number)) users.set(r.u_id as number, toUserRow(r, 'u_'));
      return toPaymentRow(r);
    });
    return { payments, users: [...users.values()] };
  }

  /**
   * Pages of payments for many users at once, each with its own `first`, `after` and `status`: one
   * LATERAL statement whatever the number of keys. Each page holds up to `first + 1` rows.
   * Returns one array per key, in key order.
   */
  async findPagesByUser(keys: readonly UserPaymentsKey[]): Promise<PaymentPageRow[][]> {
    // Keys of one batch usually share `status` and `after` (one field, one set of arguments): then
    // those predicates are constants, and each user's page is a walk of the (user_id, created_at desc,
    // id desc) index that stops after `first + 1` rows. Mixed batches still take one statement.
    const status = keys[0]!.status;
    const sameStatus = keys.every((k) => k.status === status);
    const noCursor = keys.every((k) => k.after === null);
    const params: unknown[] = [pgArray(keys.map((k) => k.userId)), pgArray(keys.map((k) => k.first + (k.probe ? 1 : 0)))];
    const where = ['p.user_id = k.user_id'];
    if (sameStatus) {
      if (status) {
        where.push('p.status = ?');
        params.push(status);
      }
    } else {
      where.push('(k.status is null or p.status = k.status)');
    }
    if (!noCursor) where.push('(k.after_at is null or (p.created_at, p.id) < (k.after_at, k.after_id))');
    // The union of what the batch's keys selected, and nothing more.
    const columns = columnsFor([...new Set(keys.flatMap((k) => k.fields))].sort());
    const raw = await queryRows<PaymentPageRow & { keyIndex: number }>(
      this.getEntityManager(),
      `select k.i::int as "keyIndex", ${columns.join(', ')}
       from unnest(?::int[], ?::int[], ?::text[], ?::timestamptz[], ?::int[])
            with ordinality as k(user_id, lim, status, after_at, after_id, i)
       cross join lateral (
         select * from payments p
         where ${where.join(' and ')}
         order by p.created_at desc, p.id desc
         limit k.lim
       ) p
       order by k.i, p.created_at desc, p.id desc`,
      [
        params[0],
        params[1],
        pgArray(keys.map((k) => k.status)),
        pgArray(keys.map((k) => (k.after ? new Date(k.after.createdAtMs) : null))),
        pgArray(keys.map((k) => k.after?.id ?? null)),
        ...params.slice(2),
      ],
    );
    const pages: PaymentPageRow[][] = keys.map(() => []);
    for (const r of raw) pages[r.keyIndex - 1]!.push(r);
    return pages;
  }

  /** Payment counts for many (user, status) pairs: one GROUP BY statement. In key order. */
  async countByUser(keys: readonly PaymentCountKey[]): Promise<number[]> {
    const raw = await queryRows<{ keyIndex: number; count: number }>(
      this.getEntityManager(),
      `select k.i::int as "keyIndex", count(p.id)::int as count
       from unnest(?::int[], ?::text[]) with ordinality as k(user_id, status, i)
       left join payments p on p.user_id = k.user_id and (k.status is null or p.status = k.status)
       group by k.i`,
      [pgArray(keys.map((k) => k.userId)), pgArray(keys.map((k) => k.status))],
    );
    const counts = keys.map(() => 0);
    for (const r of raw) counts[r.keyIndex - 1] = r.count;
    return counts;
  }

  /**
   * Per user, count and sum of payments by status and currency: one GROUP BY over every payment of
   * the given users, the kind of aggregate the query cache is for. One array per user, in input order.
   */
  async statsByUser(userIds: readonly number[]): Promise<PaymentStatsRow[][]> {
    const raw = await queryRows<PaymentStatsRow & { userId: number }>(
      this.getEntityManager(),
      `select p.user_id as "userId", p.status, p.currency, count(*)::int as count, sum(p.amount)::bigint as "totalAmount"
       from payments p
       where p.user_id = any(?::int[])
       group by p.user_id, p.status, p.currency
       order by p.user_id, p.status, p.currency`,
      [pgArray(userIds)],
    );
    const byUser = new Map<number, PaymentStatsRow[]>(userIds.map((id) => [id, []]));
    for (const { userId, status, currency, count, totalAmount } of raw) {
      byUser.get(userId)!.push({ status, currency, count, totalAmount: Number(totalAmount) });
    }
    return userIds.map((id) => byUser.get(id)!);
  }

  async countByFilter(filter: PaymentListFilter): Promise<number> {
    const { where, params } = filterSql(filter);
    const [row] = await queryRows<{ count: number }>(
      this.getEntityManager(),
      `select count(*)::int as count from payments p ${where.length ? `where ${where.join(' and ')}` : ''}`,
      params,
    );
    return row?.count ?? 0;
  }
}
