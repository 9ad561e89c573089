import type { SqlEntityManager } from '@mikro-orm/postgresql';
import { queryRows } from '../../core/sql.js';

/** `user_identities` (Migration20261207000000_identities): a provider's subject and the paygraph user it signs in as. */
export class IdentityRepository {
  constructor(private readonly em: SqlEntityManager) {}

  /** The live user an identity signs in as (a deleted user's identity signs in as nobody). */
  async findUser(issuer: string, subject: string): Promise<{ id: number; role: string; isActive: boolean } | null> {
    const [row] = await queryRows<{ id: number; role: string; isActive: boolean }>(
      this.em,
      `select u.id, u.role, u.is_active as "isActive" from user_identities i join users u on u.id = i.user_id
       where i.issuer = ? and i.subject = ? and u.deleted_at is null`,
      [issuer, subject],
    );
    return row ?? null;
  }

  /** Links the identity to `userId`; false when it was linked already (a concurrent first sign-in won). */
  async link(issuer: string, subject: string, userId: number): Promise<boolean> {
    const rows = await queryRows(
      this.em,
      'insert into user_identities (issuer, subject, user_id) values (?, ?, ?) on conflict (issuer, subject) do nothing returning user_id',
      [issuer, subject, userId],
    );
    return rows.length > 0;
  }
}
