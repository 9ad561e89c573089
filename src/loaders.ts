import { createUserLoaders } from './modules/user/user.loaders.js';
import { createPaymentLoaders } from './modules/payment/payment.loaders.js';
import type { QueryCache } from './core/cache/index.js';

/**
 * Every DataLoader of one request, over that request's cache scope: their loads read with the
 * EntityManager the scope hands them (the request's fork, its statements marked as tagged reads).
 */
export function createLoaders(cache: QueryCache) {
  const users = createUserLoaders(cache);
  return { ...users, ...createPaymentLoaders(cache, users.primeUsers) };
}

export type Loaders = ReturnType<typeof createLoaders>;
