import type { SqlEntityManager } from '@mikro-orm/postgresql';
import { Role, User } from '../user/user.entity.js';
import { secretKey, signToken } from './auth.js';

/** Signs a token for the user with this email; null when there is none. */
export async function tokenForEmail(
  em: SqlEntityManager,
  jwtSecret: string,
  email: string,
  ttlSeconds: number,
): Promise<string | null> {
  const user = await em.getRepository(User).findRowByEmail(email);
  if (!user) return null;
  return signToken(secretKey(jwtSecret), { id: user.id, role: user.role }, ttlSeconds);
}

/** The first ADMIN and the first USER, for the tokens `npm start` prints. */
export async function demoAccounts(em: SqlEntityManager): Promise<{ admin: User | null; user: User | null }> {
  const [admin, user] = await Promise.all([
    em.findOne(User, { role: Role.ADMIN, isActive: true }, { orderBy: { id: 'asc' } }),
    em.findOne(User, { role: Role.USER, isActive: true }, { orderBy: { id: 'asc' } }),
  ]);
  return { admin, user };
}
