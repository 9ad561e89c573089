import type { SqlStats } from './sql-stats.js';
import type { QueryCache } from './cache/query-cache.js';

/**
 * What core/ needs of a request's context: the app's `Context` (src/context.ts) extends it. Core code
 * is written against this, so it never imports the app's context or a module.
 */
export interface RequestScope {
  /** The request's own id (server-made). */
  requestId: string;
  /** The `x-request-id` the client sent, if sane: logged and audited beside `requestId`. */
  clientRequestId: string | null;
  /** Statements this request sent, with the GraphQL path that sent each shape. */
  sql: SqlStats;
  /** This request's query-cache scope. */
  cache: QueryCache;
  /** Who is asking (null: nobody); core code uses the id only, for logs. */
  viewer: { id: number } | null;
}
