import DataLoader from 'dataloader';
import type { SqlEntityManager } from '@mikro-orm/postgresql';
import { User } from './user.entity.js';
import type { UserRow } from './user.repository.js';
import { cacheTags, type QueryCache } from '../../core/cache/index.js';
import { tracedBatch } from '../../core/tracing.js';

/**
 * Users by id for one request, through the query cache (tag `user:<id>`): one store round trip and
 * at most one statement per batch. Every user row the request reads elsewhere is primed into it.
 */
export function createUserLoaders(em: SqlEntityManager, cache: QueryCache) {
  const users = em.getRepository(User);
  const userById = new DataLoader<number, UserRow | null>(
    tracedBatch('userById', (ids: readonly number[]) =>
      cache.getOrLoadMany('userById', ids.map((id) => [id] as [number]), { tags: ([id]) => [cacheTags.user(id)] }, async (missing) => {
        const rows = await users.findRowsByIds(missing.map(([id]) => id));
        const byId = new Map(rows.map((row) => [row.id, row]));
        return missing.map(([id]) => byId.get(id) ?? null);
      }),
    ),
    { maxBatchSize: 1000 },
  );
  return {
    userById,
    /** Makes later `userById.load(id)` of these rows cost no statement. */
    primeUsers(rows: Iterable<UserRow>): void {
      for (const row of rows) userById.prime(row.id, row);
    },
  };
}
