import { randomUUID } from 'node:crypto';
import type { MikroORM, SqlEntityManager } from '@mikro-orm/postgresql';
import { createLoaders, type Loaders } from './loaders.js';
import { SQL_STATS_KEY, SqlStats } from './core/sql-stats.js';
import { viewerFromAuthorization, type Viewer } from './modules/auth/auth.js';

/** Everything a resolver may use; made fresh for every GraphQL request by `buildContext`. */
export interface Context {
  /** Correlates logs and responses; the client's `x-request-id` when it sent one. */
  requestId: string;
  /** This request's own fork: its identity map and logger context belong to this request only. */
  em: SqlEntityManager;
  /** From the bearer token; null when the request carries none. Costs no SQL. */
  viewer: Viewer | null;
  /** Per-request DataLoaders over `em`: batching and memoisation live and die with the request. */
  loaders: Loaders;
  /** Statements this request sent (counted by the ORM logger through `em`'s logger context). */
  sql: SqlStats;
}

export interface ContextDeps {
  orm: MikroORM;
  jwtKey: Uint8Array;
  /** Keep statement texts (debug responses, tests). */
  keepSqlTexts: boolean;
}

const REQUEST_ID = /^[\w.:-]{1,128}$/;

/** Builds the per-request context from the HTTP headers. Throws UNAUTHENTICATED for a bad token. */
export async function buildContext(
  deps: ContextDeps,
  headers: Record<string, string | string[] | undefined>,
): Promise<Context> {
  const incomingId = headers['x-request-id'];
  const requestId = typeof incomingId === 'string' && REQUEST_ID.test(incomingId) ? incomingId : randomUUID();
  const authorization = headers.authorization;
  const viewer = await viewerFromAuthorization(Array.isArray(authorization) ? authorization[0] : authorization, deps.jwtKey);
  const sql = new SqlStats({ keepTexts: deps.keepSqlTexts });
  const em = deps.orm.em.fork({ loggerContext: { [SQL_STATS_KEY]: sql, requestId } });
  return { requestId, em, viewer, loaders: createLoaders(em), sql };
}
