import DataLoader from 'dataloader';
import type { SqlEntityManager } from '@mikro-orm/postgresql';
import { User } from './user.entity.js';
import type { UserRow } from './user.repository.js';

/** Users by id for one request; every user row the request reads elsewhere is primed into it. */
export function createUserLoaders(em: SqlEntityManager) {
  const users = em.getRepository(User);
  const userById = new DataLoader<number, UserRow | null>(
    async (ids) => {
      const rows = await users.findRowsByIds(ids);
      const byId = new Map(rows.map((row) => [row.id, row]));
      return ids.map((id) => byId.get(id) ?? null);
    },
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
