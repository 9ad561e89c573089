import { LockMode, type RequiredEntityData } from '@mikro-orm/core';
import { EntityRepository } from '@mikro-orm/postgresql';
import { normalizeEmail, Role, User } from './user.entity.js';
import { epochMs, pgArray, queryRows } from '../../core/sql.js';

/**
 * A user as list-sized reads return it: the driver's row (columns aliased to these keys), never a
 * managed entity (the calibration of this stack measured ~15 us to hydrate one).
 */
export interface UserRow {
  id: number;
  email: string;
  name: string;
  isActive: boolean;
  role: Role;
  /** Epoch milliseconds (see `PaymentRow`). */
  createdAt: number;
  /** Epoch milliseconds of the soft delete; null for a user who exists. */
  deletedAt: number | null;
}

export interface UserFilterInput {
  isActive?: boolean | null;
  role?: Role | null;
  emailContains?: string | null;
  /** true: deleted users only (an ADMIN asks for them explicitly); otherwise they are left out. */
  deleted?: boolean | null;
}

/**
 * Columns of `users` aliased to `UserRow` keys, so an unprefixed row is a `UserRow` as it comes;
 * `prefix` lets a join keep both tables' ids apart (then `toUserRow` takes the user out).
 */
export function userColumns(alias: string, prefix = ''): string {
  return [
    `${alias}.id as "${prefix}id"`,
    `${alias}.email as "${prefix}email"`,
    `${alias}.name as "${prefix}name"`,
    `${alias}.is_active as "${prefix}isActive"`,
    `${alias}.role as "${prefix}role"`,
    epochMs(`${alias}.created_at`, `${prefix}createdAt`),
    epochMs(`${alias}.deleted_at`, `${prefix}deletedAt`),
  ].join(', ');
}

type RawRow = Record<string, unknown>;

/** The user part of a joined row whose user columns carry `prefix`. */
export function toUserRow(raw: RawRow, prefix: string): UserRow {
  return {
    id: raw[`${prefix}id`] as number,
    email: raw[`${prefix}email`] as string,
    name: raw[`${prefix}name`] as string,
    isActive: raw[`${prefix}isActive`] as boolean,
    role: raw[`${prefix}role`] as Role,
    createdAt: raw[`${prefix}createdAt`] as number,
    deletedAt: raw[`${prefix}deletedAt`] as number | null,
  };
}

export function userEntityToRow(user: User): UserRow {
  return {
    id: user.id,
    email: user.email,
    name: user.name,
    isActive: user.isActive,
    role: user.role,
    createdAt: user.createdAt.getTime(),
    deletedAt: user.deletedAt ? user.deletedAt.getTime() : null,
  };
}

/** `%` and `_` in user text are literal characters, not wildcards. */
function likePattern(text: string): string {
  return `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/** The filter's activity and role, as conditions on the `is_active` and `role` columns of `alias`. */
function activityAndRole(alias: string, filter: UserFilterInput | undefined, where: string[], params: unknown[]): void {
  if (filter?.isActive != null) {
    where.push(`${alias}.is_active = ?`);
    params.push(filter.isActive);
  }
  if (filter?.role != null) {
    where.push(`${alias}.role = ?`);
    params.push(filter.role);
  }
}

function filterSql(filter: UserFilterInput | undefined): { where: string[]; params: unknown[] } {
  const where: string[] = [filter?.deleted ? 'u.deleted_at is not null' : 'u.deleted_at is null'];
  const params: unknown[] = [];
  activityAndRole('u', filter, where, params);
  if (filter?.emailContains != null && filter.emailContains !== '') {
    // Emails are stored lower-case, so lower-casing the needle makes the match case-insensitive.
    where.push(`u.email like ? escape '\\'`);
    params.push(likePattern(filter.emailContains.toLowerCase()));
  }
  return { where, params };
}

export class UserRepository extends EntityRepository<User> {
  // --- Entity reads with `populate` (the original design note's repository, camelCased) ---

  /** A user with all their payments (newest first) loaded in one joined statement. */
  getUserWithPayments(id: number): Promise<User | null> {
    return this.findOne(
      { id, deletedAt: null },
      { populate: ['payments'], strategy: 'joined', orderBy: { payments: { createdAt: 'desc', id: 'desc' } } },
    );
  }

  /** Active users by id, each with their payments, in one statement. */
  getActiveUsersWithPayments(skip = 0, limit = 100): Promise<User[]> {
    return this.find(
      { isActive: true, deletedAt: null },
      {
        populate: ['payments'],
        strategy: 'joined',
        offset: skip,
        limit,
        orderBy: { id: 'asc', payments: { createdAt: 'desc', id: 'desc' } },
      },
    );
  }

  getUserByEmailWithPayments(email: string): Promise<User | null> {
    return this.findOne(
      { email: normalizeEmail(email), deletedAt: null },
      { populate: ['payments'], strategy: 'joined', orderBy: { payments: { createdAt: 'desc', id: 'desc' } } },
    );
  }

  // --- Plain-row reads for GraphQL lists and loaders ---

  /**
   * Rows for the given ids, in no particular order (the loader re-orders), deleted users included
   * (`deletedAt` set): a payment still shows its deleted user to ADMINs; every other path refuses them.
   */
  async findRowsByIds(ids: readonly number[]): Promise<UserRow[]> {
    return queryRows<UserRow>(this.getEntityManager(), `select ${userColumns('u')} from users u where u.id = any(?::int[])`, [pgArray(ids)]);
  }

  async findRowByEmail(email: string): Promise<UserRow | null> {
    const [row] = await queryRows<UserRow>(this.getEntityManager(), `select ${userColumns('u')} from users u where u.email = ? and u.deleted_at is null`, [normalizeEmail(email)]);
    return row ?? null;
  }

  /** Keyset page over `id asc`; asks for one row more than `first` to know whether another page exists. */
  async findPage(args: { first: number; afterId?: number; filter?: UserFilterInput }): Promise<UserRow[]> {
    const { where, params } = filterSql(args.filter);
    if (args.afterId !== undefined) {
      where.push('u.id > ?');
      params.push(args.afterId);
    }
    params.push(args.first + 1);
    return queryRows<UserRow>(
      this.getEntityManager(),
      `select ${userColumns('u')} from users u ${where.length ? `where ${where.join(' and ')}` : ''} order by u.id asc limit ?`,
      params,
    );
  }

  /**
   * Without `emailContains`: from the totals that triggers keep with every write of `users` (at most 16
   * rows a combination of activity, role and deletion; src/db/migrations/Migration20261201050000_counters.ts).
   * With it: a count of the matches through the trigram index, exact, which grows with the number of
   * matches (not of users).
   */
  async countByFilter(filter?: UserFilterInput): Promise<number> {
    if (filter?.emailContains != null && filter.emailContains !== '') {
      const { where, params } = filterSql(filter);
      const [row] = await queryRows<{ count: number }>(this.getEntityManager(), `select count(*)::int as count from users u where ${where.join(' and ')}`, params);
      return row?.count ?? 0;
    }
    const where = ['t.deleted = ?'];
    const params: unknown[] = [filter?.deleted === true];
    activityAndRole('t', filter, where, params);
    const [row] = await queryRows<{ count: number }>(this.getEntityManager(), `select coalesce(sum(t.count), 0)::int as count from user_totals t where ${where.join(' and ')}`, params);
    return row?.count ?? 0;
  }

  // --- Writes (entities; the caller's transaction flushes and writes the audit entry) ---

  /** A user who is not deleted, locked until the transaction ends: what an update or delete starts from. */
  getForUpdate(id: number): Promise<User | null> {
    return this.findOne({ id, deletedAt: null }, { lockMode: LockMode.PESSIMISTIC_WRITE });
  }

  /** A new user, persisted on the next flush. */
  createNew(data: RequiredEntityData<User>): User {
    return this.create(data);
  }
}
