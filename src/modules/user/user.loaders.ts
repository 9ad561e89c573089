import DataLoader from 'dataloader';
import { User } from './user.entity.js';
import type { UserRow } from './user.repository.js';
import { cacheTags, type QueryCache } from '../../core/cache/index.js';
import { tracedBatch } from '../../core/tracing.js';

/**
 * Users by id for one request, through the query cache (reading with the EntityManager it hands out) (tag `user:<id>`): one store round trip and
 * at most one statement per batch. Every user row the request reads elsewhere is primed into it.
 */
export function createUserLoaders(cache: QueryCache) {
  /**
   * The user rows this request already holds (primed or loaded), reachable without a promise. The first
   * row of an id stays, as DataLoader's own memo does, so both always agree.
   */
  const known = new Map<number, UserRow>();
  const remember = (row: UserRow) => {
    if (!known.has(row.id)) known.set(row.id, row);
  };
  const userById = new DataLoader<number, UserRow | null>(
    tracedBatch('userById', async (ids: readonly number[]) => {
      const rows = await cache.getOrLoadMany('userById', ids.map((id) => [id] as [number]), { tags: ([id]) => [cacheTags.user(id)] }, async (missing, em) => {
        const found = await em.getRepository(User).findRowsByIds(missing.map(([id]) => id));
        const byId = new Map(found.map((row) => [row.id, row]));
        return missing.map(([id]) => byId.get(id) ?? null);
      });
      for (const row of rows) if (row && !(row instanceof Error)) remember(row);
      return rows;
    }),
    { maxBatchSize: 1000 },
  );
  return {
    userById,
    /** Makes later `userById.load(id)` of these rows cost no statement. */
    primeUsers(rows: Iterable<UserRow>): void {
      for (const row of rows) {
        userById.prime(row.id, row);
        remember(row);
      }
    },
    /**
     * The row of a user this request already holds, or undefined: `Payment.user` under a user's page
     * answers with it at once (no promise), so the executor stays on its synchronous path.
     */
    knownUser(id: number): UserRow | undefined {
      return known.get(id);
    },
  };
}
