import { LockMode } from '@mikro-orm/core';
import { EntityRepository } from '@mikro-orm/postgresql';
import { Payment, PaymentStatus } from './payment.entity.js';
import { toUserRow, userColumns, type UserRow } from '../user/user.repository.js';
import { pgArray, queryRows } from '../../core/sql.js';
import type { PaymentCursor } from '../../core/pagination.js';
import { columnsFor, PAYMENT_COLUMNS, PAYMENT_ROW_KEYS, pickPaymentRow } from './payment.fields.js';
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

type RawRow = Record<string, unknown>;

/** Entity properties whose row value is not the property as it is. */
const ENTITY_TO_ROW: Partial<Record<keyof PaymentRow, (p: Payment) => unknown>> = {
  userId: (p) => p.user.id,
  createdAt: (p) => p.createdAt.getTime(),
};

/** A loaded entity as the row the GraphQL layer serves (the same keys as every row read). */
export function paymentEntityToRow(payment: Payment): PaymentRow {
  const row: Record<string, unknown> = {};
  for (const key of PAYMENT_ROW_KEYS) row[key] = ENTITY_TO_ROW[key]?.(payment) ?? (payment as unknown as RawRow)[key] ?? null;
  return row as unknown as PaymentRow;
}

/** The row of a new payment (createPayment): what the client asked for, under its key. */
export interface NewPayment {
  userId: number;
  amount: number;
  currency: string;
  description: string | null;
  idempotencyKey: string;
}

/** Card testing: at most `max` FAILED payments created within `windowSeconds` before new ones are refused. */
export interface FailureRule {
  max: number;
  windowSeconds: number;
}

/** Options of the single-record loads of write paths. */
export interface WriteLoadOptions {
  /** Lock the payment's row (FOR UPDATE) until the surrounding transaction ends; the user's is not locked. */
  lock?: boolean;
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
  // --- Entity reads with `populate` (the original design note's repository, camelCased). The write
  // paths (mutations, webhook) load their one payment through these: always fresh from the database
  // (never the fork's identity map), with its user joined, and locked when asked.

  /** A payment with its user, one joined statement. */
  getPaymentWithUser(id: number, options: WriteLoadOptions = {}): Promise<Payment | null> {
    return this.findOne({ id }, this.writeLoad(options));
  }

  /** A payment not yet linked to a PaymentIntent (the webhook links it through the intent's metadata). */
  getUnlinkedPaymentWithUser(id: number, options: WriteLoadOptions = {}): Promise<Payment | null> {
    return this.findOne({ id, stripePaymentId: null }, this.writeLoad(options));
  }

  /** The payment a client's idempotency key names, if any. */
  getPaymentByIdempotencyKey(userId: number, idempotencyKey: string): Promise<Payment | null> {
    return this.findOne({ user: userId, idempotencyKey }, this.writeLoad({}));
  }

  private writeLoad(options: WriteLoadOptions) {
    return {
      populate: ['user'] as const,
      strategy: 'joined' as const,
      disableIdentityMap: true,
      ...(options.lock ? { lockMode: LockMode.PESSIMISTIC_WRITE, lockTableAliases: [this.alias] } : {}),
    };
  }

  /** The alias MikroORM gives the root table of a query (`FOR UPDATE OF` names it). */
  private get alias(): string {
    return this.createQueryBuilder().alias;
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

  getPaymentByStripeId(stripePaymentId: string, options: WriteLoadOptions = {}): Promise<Payment | null> {
    return this.findOne({ stripePaymentId }, this.writeLoad(options));
  }

  /** From the user's counters (src/db/migrations/Migration20261201050000_counters.ts), whatever their number of payments. */
  @cached<[number, (PaymentStatus | null)?]>({ tags: ([userId]) => [cacheTags.paymentsOfUser(userId)] })
  async countUserPayments(userId: number, status?: PaymentStatus | null): Promise<number> {
    return (await this.countByUser([{ userId, status: status ?? null }]))[0]!;
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

  /** Payments with their users, as `findRowWithUser` reads one, for many ids: one statement, in no particular order. */
  async findRowsWithUsers(ids: readonly number[]): Promise<{ payments: PaymentRow[]; users: UserRow[] }> {
    if (ids.length === 0) return { payments: [], users: [] };
    return this.selectWithUsers('where p.id = any(?::int[])', [pgArray(ids)], '');
  }

  /** Full rows of these payments, in no particular order: one statement. */
  async findRowsByIds(ids: readonly number[]): Promise<PaymentRow[]> {
    if (ids.length === 0) return [];
    return queryRows<PaymentRow>(this.getEntityManager(), `select ${PAYMENT_COLUMNS} from payments p where p.id = any(?::int[])`, [pgArray(ids)]);
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
      return pickPaymentRow(r);
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
    // Each placeholder is written with its value, so their order cannot drift apart.
    const params: unknown[] = [];
    const bind = (sqlText: string, ...values: unknown[]) => {
      params.push(...values);
      return sqlText;
    };
    const source = bind(
      'unnest(?::int[], ?::int[], ?::text[], ?::timestamptz[], ?::int[]) with ordinality as k(user_id, lim, status, after_at, after_id, i)',
      pgArray(keys.map((k) => k.userId)),
      pgArray(keys.map((k) => k.first + (k.probe ? 1 : 0))),
      pgArray(keys.map((k) => k.status)),
      pgArray(keys.map((k) => (k.after ? new Date(k.after.createdAtMs) : null))),
      pgArray(keys.map((k) => k.after?.id ?? null)),
    );
    const where = ['p.user_id = k.user_id'];
    if (!sameStatus) where.push('(k.status is null or p.status = k.status)');
    else if (status) where.push(bind('p.status = ?', status));
    // A key without a cursor starts above every payment: the same row comparison, which the index
    // answers as a range (a deep page starts at its cursor instead of walking to it).
    if (!noCursor) where.push("(p.created_at, p.id) < (coalesce(k.after_at, 'infinity'::timestamptz), coalesce(k.after_id, 0))");
    // The union of what the batch's keys selected, and nothing more.
    const columns = columnsFor([...new Set(keys.flatMap((k) => k.fields))].sort());
    const raw = await queryRows<PaymentPageRow & { keyIndex: number }>(
      this.getEntityManager(),
      `select k.i::int as "keyIndex", ${columns.join(', ')}
       from ${source}
       cross join lateral (
         select * from payments p
         where ${where.join(' and ')}
         order by p.created_at desc, p.id desc
         limit k.lim
       ) p
       order by k.i, p.created_at desc, p.id desc`,
      params,
    );
    const pages: PaymentPageRow[][] = keys.map(() => []);
    for (const r of raw) pages[r.keyIndex - 1]!.push(r);
    return pages;
  }

  // --- Counts and sums. Read from the counters that triggers keep in the transaction of every write of
  // `payments` (src/db/migrations/Migration20261201050000_counters.ts): a read costs the same for a
  // user with five payments as for one with five million, and the counts are exact.

  /** Payment counts for many (user, status) pairs: one statement over their counter rows. In key order. */
  async countByUser(keys: readonly PaymentCountKey[]): Promise<number[]> {
    const raw = await queryRows<{ keyIndex: number; count: number }>(
      this.getEntityManager(),
      // A subquery per key: each reads its user's few counter rows through the primary key, whatever
      // the planner thinks of the table (a join let it hash a scan of every counter row, 5x slower for
      // 50 users at 1,000).
      `select k.i::int as "keyIndex",
              coalesce((select sum(c.count) from payment_counters c where c.user_id = k.user_id and (k.status is null or c.status = k.status)), 0)::int as count
       from unnest(?::int[], ?::text[]) with ordinality as k(user_id, status, i)`,
      [pgArray(keys.map((k) => k.userId)), pgArray(keys.map((k) => k.status))],
    );
    const counts = keys.map(() => 0);
    for (const r of raw) counts[r.keyIndex - 1] = r.count;
    return counts;
  }

  /** Per user, count and sum of payments by status and currency: one statement. One array per user, in input order. */
  async statsByUser(userIds: readonly number[]): Promise<PaymentStatsRow[][]> {
    const raw = await queryRows<PaymentStatsRow & { userId: number }>(
      this.getEntityManager(),
      `select c.user_id as "userId", c.status, c.currency, c.count::int as count, c.total_amount as "totalAmount"
       from payment_counters c
       where c.user_id = any(?::int[]) and c.count > 0
       order by c.user_id, c.status, c.currency`,
      [pgArray(userIds)],
    );
    const byUser = new Map<number, PaymentStatsRow[]>(userIds.map((id) => [id, []]));
    for (const { userId, status, currency, count, totalAmount } of raw) {
      byUser.get(userId)!.push({ status, currency, count, totalAmount: Number(totalAmount) });
    }
    return userIds.map((id) => byUser.get(id)!);
  }

  /** One user's payments from their counters; everyone's from the totals' shards (at most 16 rows a status). */
  async countByFilter(filter: PaymentListFilter): Promise<number> {
    if (filter.userId != null) return (await this.countByUser([{ userId: filter.userId, status: filter.status ?? null }]))[0]!;
    const [row] = await queryRows<{ count: number }>(
      this.getEntityManager(),
      `select coalesce(sum(t.count), 0)::int as count from payment_totals t ${filter.status ? 'where t.status = ?' : ''}`,
      filter.status ? [filter.status] : [],
    );
    return row?.count ?? 0;
  }

  // --- Writes. Each is one statement whose condition makes it safe under concurrency. ---

  /**
   * Inserts a PENDING payment unless the user already has one under this key; the id either way, and
   * the existing payment (its user joined) when there was one.
   */
  async insertPendingOnce(
    data: NewPayment,
    failures?: FailureRule,
  ): Promise<{ id: number; inserted: true } | { id: number; inserted: false; existing: Payment } | { inserted: false; refused: true }> {
    // Card testing: the insert itself checks the user's recent failures (no statement of its own, and
    // atomic with the insert); a retry of a payment that exists is never refused (its key conflicts).
    const guard = failures
      ? `where (select count(*) from (select 1 from payments where user_id = ? and status = 'FAILED' and created_at > now() - ? * interval '1 second' limit ?) recent) < ?`
      : '';
    const [inserted] = await queryRows<{ id: number }>(
      this.getEntityManager(),
      `insert into payments (user_id, amount, currency, description, idempotency_key, status, created_by, updated_by)
       select ?, ?, ?, ?, ?, 'PENDING', ?, ? ${guard}
       on conflict (user_id, idempotency_key) do nothing
       returning id`,
      [
        data.userId, data.amount, data.currency, data.description, data.idempotencyKey, data.userId, data.userId,
        ...(failures ? [data.userId, failures.windowSeconds, failures.max, failures.max] : []),
      ],
    );
    if (inserted) return { id: inserted.id, inserted: true };
    const existing = await this.getPaymentByIdempotencyKey(data.userId, data.idempotencyKey);
    if (existing) return { id: existing.id, inserted: false, existing };
    if (failures) return { inserted: false, refused: true };
    throw new Error(`payment of user ${data.userId} under key ${data.idempotencyKey} vanished`);
  }

  /**
   * When the user may create payments again under `rule`: once fewer than `max` of their FAILED
   * payments were created within the window (null: they may now). One index-only statement.
   */
  async failuresClearAt(userId: number, rule: FailureRule): Promise<Date | null> {
    const rows = await queryRows<{ created_at: Date }>(
      this.getEntityManager(),
      `select created_at from payments where user_id = ? and status = 'FAILED' and created_at > now() - ? * interval '1 second'
       order by created_at desc limit ?`,
      [userId, rule.windowSeconds, rule.max],
    );
    if (rows.length < rule.max) return null;
    return new Date(new Date(rows[rule.max - 1]!.created_at).getTime() + rule.windowSeconds * 1000);
  }

  /**
   * -> CANCELED for a payment Stripe never heard of (no intent), in the cancelable status `status` it
   * was read in (PENDING; REQUIRES_ACTION only if someone set it so); false if it moved meanwhile.
   */
  async cancelUnlinked(id: number, status: PaymentStatus, actorId: number | null): Promise<boolean> {
    const rows = await queryRows(
      this.getEntityManager(),
      `update payments set status = 'CANCELED', updated_by = ?, updated_at = now()
       where id = ? and status = ? and status in ('PENDING', 'REQUIRES_ACTION') and stripe_payment_id is null returning id`,
      [actorId, id, status],
    );
    return rows.length > 0;
  }

  /**
   * An abandoned payment (PENDING or REQUIRES_ACTION, as `status` says it was read) -> CANCELED by the
   * reconciler, when Stripe has no intent that could be paid; false if it moved meanwhile.
   */
  async cancelPending(id: number, status: PaymentStatus): Promise<boolean> {
    const rows = await queryRows(
      this.getEntityManager(),
      `update payments set status = 'CANCELED', updated_by = null, updated_at = now() where id = ? and status = ? and status in ('PENDING', 'REQUIRES_ACTION') returning id`,
      [id, status],
    );
    return rows.length > 0;
  }

  /** Stripe saved a 500 under the current Idempotency-Key: the next attempt uses a new one. */
  async nextStripeAttempt(id: number, attempt: number): Promise<void> {
    await queryRows(this.getEntityManager(), 'update payments set stripe_attempt = stripe_attempt + 1 where id = ? and stripe_attempt = ?', [id, attempt]);
  }

  /** Stripe saved a 500 under the current refund key: the next refund try uses a new one (after asking Stripe). */
  async nextRefundAttempt(id: number, attempt: number): Promise<void> {
    await queryRows(this.getEntityManager(), 'update payments set refund_attempt = refund_attempt + 1 where id = ? and refund_attempt = ?', [id, attempt]);
  }

  /** PENDING -> FAILED with the provider's reason; false (nothing changed) if it is no longer PENDING. */
  async failPending(id: number, reason: string, actorId: number | null): Promise<boolean> {
    const rows = await queryRows(
      this.getEntityManager(),
      `update payments set status = 'FAILED', failure_reason = ?, updated_by = ?, updated_at = now() where id = ? and status = 'PENDING' returning id`,
      [reason.slice(0, 1000), actorId, id],
    );
    return rows.length > 0;
  }

  /**
   * Stores the PaymentIntent of a PENDING payment: `linked` when this call stored it, `already` when
   * the payment had it (a concurrent completion, on this instance or another, did), `refused` when it
   * was canceled or linked to another intent meanwhile. Call it inside a transaction: the row is read
   * locked, so two completions decide one after the other on the committed state.
   */
  async linkIntent(id: number, intentId: string): Promise<'linked' | 'already' | 'refused'> {
    const payment = await this.getPaymentWithUser(id, { lock: true });
    if (!payment || payment.status !== PaymentStatus.PENDING) return 'refused';
    if (payment.stripePaymentId === intentId) return 'already';
    if (payment.stripePaymentId) return 'refused';
    await queryRows(this.getEntityManager(), 'update payments set stripe_payment_id = ?, updated_at = now() where id = ?', [intentId, id]);
    return 'linked';
  }

  /**
   * Sets what a Stripe event decided for a payment locked in the current transaction. A payment that
   * moved is asked about on the usual schedule again (its reconciliation backoff starts over).
   */
  async applyProviderState(
    id: number,
    state: { status: PaymentStatus; intentId: string; failureReason?: string | null; amountRefunded?: number },
  ): Promise<void> {
    await queryRows(
      this.getEntityManager(),
      `update payments set status = ?, failure_reason = coalesce(?, failure_reason), amount_refunded = coalesce(?, amount_refunded),
       stripe_payment_id = coalesce(stripe_payment_id, ?), updated_by = null, updated_at = now(), reconcile_due_at = null, reconcile_checks = 0
       where id = ?`,
      [state.status, state.failureReason ?? null, state.amountRefunded ?? null, state.intentId, id],
    );
  }

  /**
   * Notes a refund asked of Stripe: the refunded total it brings the payment to (which only grows),
   * kept until Stripe's webhook or reconciliation records it. Returns the total noted.
   */
  async noteRefundRequested(id: number, total: number, actorId: number | null): Promise<number> {
    const [row] = await queryRows<{ total: number }>(
      this.getEntityManager(),
      `update payments set refund_requested_total = greatest(refund_requested_total, ?), refund_requested_at = now(), updated_by = ?, updated_at = now()
       where id = ? returning refund_requested_total as total`,
      [total, actorId, id],
    );
    return row?.total ?? total;
  }

  /**
   * After reconciliation asked Stripe: what Stripe has is what was asked (a failed refund is not in
   * flight), but only if no refund was asked for since the run read `requestedSeen`: a request made
   * while the run talked to Stripe stays in flight for the next run. The totals before and after, or
   * null when it changed nothing.
   */
  async settleRefundRequest(id: number, requestedSeen: number): Promise<{ before: number; after: number } | null> {
    const [row] = await queryRows<{ after: number }>(
      this.getEntityManager(),
      `update payments set refund_requested_total = amount_refunded
       where id = ? and refund_requested_total = ? and refund_requested_total <> amount_refunded
       returning refund_requested_total as after`,
      [id, requestedSeen],
    );
    return row ? { before: requestedSeen, after: row.after } : null;
  }

  /**
   * Reconciliation asked Stripe about this payment and it is still unsettled: it goes to the back of
   * the line, due again after `baseSeconds` x 2^checks (at most x64), so that abandoned payments are
   * asked about less and less often and a batch always reaches the others.
   */
  async noteReconcileCheck(id: number, baseSeconds: number): Promise<void> {
    await queryRows(
      this.getEntityManager(),
      `update payments set reconcile_checks = reconcile_checks + 1,
       reconcile_due_at = now() + make_interval(secs => ? * power(2, least(reconcile_checks + 1, 6)))
       where id = ?`,
      [Math.max(1, baseSeconds), id],
    );
  }

  /**
   * Reconciliation's check of this payment failed (Stripe away, an error): it is due again at once, but
   * behind every payment due before it, so a payment that keeps failing never holds the front of the line.
   */
  async noteReconcileFailure(id: number): Promise<void> {
    await queryRows(this.getEntityManager(), 'update payments set reconcile_due_at = now() where id = ?', [id]);
  }

  /**
   * Payments the customer left unpaid (PENDING, REQUIRES_ACTION) for longer than `olderThanSeconds`,
   * oldest first, at most `limit`: what expires (through `payments_expirable_index`).
   */
  async findExpirableIds(olderThanSeconds: number, limit: number): Promise<number[]> {
    const rows = await queryRows<{ id: number }>(
      this.getEntityManager(),
      `select p.id from payments p
       where p.status in ('PENDING', 'REQUIRES_ACTION') and p.created_at < now() - make_interval(secs => ?)
       order by p.created_at limit ?`,
      [olderThanSeconds, limit],
    );
    return rows.map((r) => r.id);
  }

  /**
   * What reconciliation asks Stripe about, at most `limit`, those due longest ago first: payments with
   * an intent still unsettled (PENDING, REQUIRES_ACTION, PROCESSING), due once unchanged for
   * `olderThanSeconds` and then as their schedule says (`noteReconcileCheck`), and payments with a refund
   * asked for that long ago and not yet recorded. Ids only; each is then locked on its own. The first
   * part walks `payments_reconcile_due_index` in its order.
   */
  async findUnsettledIds(olderThanSeconds: number, limit: number): Promise<number[]> {
    const rows = await queryRows<{ id: number }>(
      this.getEntityManager(),
      `select c.id from (
         (select p.id, coalesce(p.reconcile_due_at, p.updated_at) as since from payments p
           where p.status in ('PENDING', 'REQUIRES_ACTION', 'PROCESSING') and p.stripe_payment_id is not null
             and coalesce(p.reconcile_due_at, p.updated_at + make_interval(secs => ?)) < now()
           order by coalesce(p.reconcile_due_at, p.updated_at) limit ?)
         union all
         (select p.id, p.refund_requested_at as since from payments p
           where p.refund_requested_total > p.amount_refunded and p.refund_requested_at < now() - make_interval(secs => ?)
           order by p.refund_requested_at limit ?)
       ) c group by c.id order by min(c.since) limit ?`,
      [olderThanSeconds, limit, olderThanSeconds, limit, limit],
    );
    return rows.map((r) => r.id);
  }
}
