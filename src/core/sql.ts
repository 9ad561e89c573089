import type { SqlEntityManager } from '@mikro-orm/postgresql';

/** Where a fork's hand-written reads run instead of its own (primary) connection: a read replica. */
export interface ReadTarget {
  /** Runs one read; on a replica that fails, the implementation answers from the primary instead. */
  read<T>(sql: string, params: readonly unknown[], loggerContext: Record<string, unknown>): Promise<T[]>;
}

const readTargets = new WeakMap<SqlEntityManager, ReadTarget>();

/** From now on `queryRows` on `em` (outside a transaction) runs on `target`. */
export function bindReadTarget(em: SqlEntityManager, target: ReadTarget): void {
  readTargets.set(em, target);
}

/**
 * Helpers for the hand-written SQL of list-sized reads. MikroORM inlines `?` parameters into the
 * statement text (quoted and escaped); an array is passed as ONE Postgres array literal so a batch of
 * any size stays one short parameter, cast in SQL (`?::int[]`).
 */

/** `[1, 2, null]` -> `{1,2,NULL}` (undefined too); strings are double-quoted with `"` and `\` escaped. */
export function pgArray(values: ReadonlyArray<string | number | Date | null | undefined>): string {
  const items = values.map((v) => {
    if (v == null) return 'NULL';
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) throw new TypeError(`pgArray: ${v} is not a finite number`);
      return String(v);
    }
    const text = v instanceof Date ? v.toISOString() : v;
    return `"${text.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
  });
  return `{${items.join(',')}}`;
}

/**
 * Runs hand-written SQL on a (forked) EntityManager and returns plain rows. The fork's logger context
 * goes along, so the statement is counted against the request that sent it. A fork bound to a read
 * target (a replica, see src/db/replicas) reads there.
 */
export function queryRows<T = Record<string, unknown>>(
  em: SqlEntityManager,
  sql: string,
  params: readonly unknown[] = [],
): Promise<T[]> {
  const target = readTargets.get(em);
  if (target && !em.isInTransaction()) return target.read<T>(sql, params, em.getLoggerContext());
  return em.execute<T[]>(sql, params as unknown[], 'all', em.getLoggerContext());
}

/**
 * `em.transactional` with the request's logger context passed on, so BEGIN and COMMIT are counted
 * against the request too (MikroORM takes them from the options, not from the fork).
 */
export function inTransaction<T>(em: SqlEntityManager, run: (tx: SqlEntityManager) => Promise<T>): Promise<T> {
  return em.transactional((tx) => run(tx as SqlEntityManager), { loggerContext: em.getLoggerContext() });
}

/**
 * A timestamp column selected as epoch milliseconds (a float8, which the driver hands over as a
 * number): rows carry timestamps as numbers, far cheaper than a Date parsed from text per row.
 */
export function epochMs(column: string, alias: string): string {
  return `(extract(epoch from ${column}) * 1000)::float8 as "${alias}"`;
}

/**
 * `pg_try_advisory_xact_lock`: true when this transaction now holds the lock named by `key`, false when
 * another does. Transaction-scoped, so it ends with the transaction, also behind a transaction-mode
 * pooler (a session-level lock would outlive its transaction on a pooled connection).
 */
export async function tryAdvisoryXactLock(tx: SqlEntityManager, key: number): Promise<boolean> {
  const [row] = await queryRows<{ locked: boolean }>(tx, 'select pg_try_advisory_xact_lock(?) as locked', [key]);
  return row?.locked === true;
}
