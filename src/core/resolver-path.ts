import type { GraphQLResolveInfo } from 'graphql';
import type { MiddlewareFn } from 'type-graphql';
import type { RequestScope } from './request-scope.js';

/**
 * Notes which GraphQL field is resolving, so the N+1 detector can name the path of a repeated
 * statement. Applied to resolver classes: it runs for fields that may reach the database, not for
 * plain ones. Resolvers interleave, so the path noted is the last field that started resolving; an
 * N+1 comes from many siblings of one list field, which all fold to the same path.
 * (AsyncLocalStorage would be exact, but on Node 20 it turns on promise hooks for every promise
 * of the process, a cost the hot path should not pay.)
 */
export const TrackResolverPath: MiddlewareFn<RequestScope> = ({ info, context }, next) => {
  notePath(context, info);
  return next();
};

/** What TrackResolverPath does, for resolvers called without type-graphql's middleware chain. */
export function notePath(context: Pick<RequestScope, 'sql'>, info: Pick<GraphQLResolveInfo, 'path'>): void {
  context.sql.notePath(info.path);
}
