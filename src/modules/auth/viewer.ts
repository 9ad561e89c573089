import type { SqlEntityManager } from '@mikro-orm/postgresql';
import { User } from '../user/user.entity.js';
import type { UserRow } from '../user/user.repository.js';
import type { Viewer } from './auth.js';
import { cacheTags, QueryCache, type CacheService, type ReadDependencies } from '../../core/cache/index.js';
import { InvalidTokenError } from '../../core/errors.js';

/**
 * The viewer as the database says now, not as the token said when it was issued: a deactivated or
 * deleted user's token is refused (401) on the next request, and a new role applies on the next
 * request, on every instance. The user's row comes through the shared cache under the `user:<id>` tag
 * (the same entry as the `userById` loader's), which every write to the user bumps everywhere: 0
 * statements when warm, 1 when cold. It is cached even when CACHE_ENABLED=false turns query caching off
 * (that switch is about query results); `Cache-Control: no-cache` reads it fresh. Returns the row too,
 * so the request's loader is primed with it; the read is noted in `dependencies` (the request's), as
 * a response that shows the viewer's row depends on it.
 */
export async function currentViewer(
  claims: Viewer,
  em: SqlEntityManager,
  cache: CacheService,
  options: { fresh: boolean; dependencies?: ReadDependencies },
): Promise<{ viewer: Viewer; row: UserRow }> {
  const scope = new QueryCache(cache, { enabled: !options.fresh, em, dependencies: options.dependencies });
  const row = await scope.getOrLoad('userById', [claims.id], { tags: ([id]) => [cacheTags.user(id)] }, async (readEm) => {
    const [found] = await readEm.getRepository(User).findRowsByIds([claims.id]);
    return found ?? null;
  });
  if (!row || row.deletedAt !== null || !row.isActive) {
    throw new InvalidTokenError("This token no longer grants access: its user is deactivated or deleted");
  }
  return { viewer: { id: row.id, role: row.role }, row };
}
