import type { SqlEntityManager } from '@mikro-orm/postgresql';
import { createUserLoaders } from './modules/user/user.loaders.js';
import { createPaymentLoaders } from './modules/payment/payment.loaders.js';

/** Every DataLoader of one request, over that request's EntityManager fork. */
export function createLoaders(em: SqlEntityManager) {
  return { ...createUserLoaders(em), ...createPaymentLoaders(em) };
}

export type Loaders = ReturnType<typeof createLoaders>;
