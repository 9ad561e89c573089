import { ConnectionException } from '@mikro-orm/core';

const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now
  '57014', // query_canceled (statement_timeout)
  '08000',
  '08001',
  '08003',
  '08004',
  '08006',
]);

const UNAVAILABLE_MESSAGES = [
  /Connection terminated/i,
  /Timeout acquiring a connection/i,
  /connect ECONNREFUSED/i,
  /the database system is (shutting down|starting up)/i,
  // pg: a client whose connection died is refused for every later query.
  /Client has encountered a connection error and is not queryable/i,
  // knex: what the next statement of a transaction gets once its BEGIN or COMMIT failed, which is a
  // connection that died under it. (Also what a bug that used a finished transaction would get: these
  // are logged with their stack, see operationLogPlugin, so such a bug is not hidden by the 503.)
  /Transaction query already complete/i,
];

/**
 * True when an error means PostgreSQL is down, unreachable or too slow (connection refused or lost,
 * pool wait or statement timeout), as opposed to a bug or bad data. Walks wrapped causes.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  const seen = new Set<unknown>();
  let current: unknown = error;
  while (current && typeof current === 'object' && !seen.has(current)) {
    seen.add(current);
    const e = current as { name?: string; code?: unknown; message?: unknown; cause?: unknown; originalError?: unknown; previous?: unknown };
    if (current instanceof ConnectionException || e.name === 'KnexTimeoutError') return true;
    if (typeof e.code === 'string' && UNAVAILABLE_CODES.has(e.code)) return true;
    if (typeof e.message === 'string' && UNAVAILABLE_MESSAGES.some((re) => re.test(e.message as string))) return true;
    current = e.originalError ?? e.cause ?? e.previous;
  }
  return false;
}
