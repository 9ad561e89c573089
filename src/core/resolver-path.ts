import { AsyncLocalStorage } from 'node:async_hooks';
import type { GraphQLResolveInfo, ResponsePath } from 'graphql';
import type { MiddlewareFn } from 'type-graphql';

const currentPath = new AsyncLocalStorage<ResponsePath>();

/**
 * Remembers which GraphQL field is resolving, so the SQL it sends (directly, or through a loader batch
 * it started) can be reported with its path. Applied to resolver classes, so it wraps the fields that
 * may reach the database and not the plain ones.
 */
export const TrackResolverPath: MiddlewareFn = ({ info }: { info: GraphQLResolveInfo }, next) => currentPath.run(info.path, next);

/** `users.nodes.*.payments`: list indexes folded, so one path names a whole N+1. */
export function currentResolverPath(): string | null {
  let path: ResponsePath | undefined = currentPath.getStore();
  if (!path) return null;
  const parts: string[] = [];
  for (; path; path = path.prev) parts.push(typeof path.key === 'number' ? '*' : path.key);
  return parts.reverse().join('.');
}
