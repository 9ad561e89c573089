import type { SqlEntityManager } from '@mikro-orm/postgresql';
import { createUserLoaders } from './modules/user/user.loaders.js';
import { createPaymentLoaders } from './modules/payment/payment.loaders.js';
import type { QueryCache } from './core/cache/index.js';

/** Every DataLoader of one request, over that request's EntityManager fork and cache scope. */
export function createLoaders(em: SqlEntityManager, cache: QueryCache) {
  return { ...createUserLoaders(em, cache), ...createPaymentLoaders(em, cache) };
}

export type Loaders = ReturnType<typeof createLoaders>;
