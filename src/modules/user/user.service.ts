import { UniqueConstraintViolationException } from '@mikro-orm/core';
import type { SqlEntityManager } from '@mikro-orm/postgresql';
import { normalizeEmail, Role, User } from './user.entity.js';
import type { CreateUserInput, UpdateUserInput } from './user.inputs.js';
import { QueryHelper } from '../../core/query-helpers.js';
import { inTransaction } from '../../core/sql.js';
import { ConflictError, ForbiddenError, NotFoundError } from '../../core/errors.js';
import type { Viewer } from '../auth/auth.js';
import { AuditEntityType, AuditLogEntry } from '../audit/audit.entity.js';
import { changedFields, type AuditContext } from '../audit/audit.js';

export const userHelper = new QueryHelper(User, ['email', 'name', 'createdAt']);

/** What a user write needs: the request's fork, and who is writing (for the audit log and updatedBy). */
export interface UserWriteDeps {
  em: SqlEntityManager;
  audit: AuditContext;
}

function emailTaken(email: string): ConflictError {
  return new ConflictError(`a user with email ${email} already exists`);
}

/** The audited fields of a user. */
function snapshot(user: User): Record<string, unknown> {
  return { email: user.email, name: user.name, role: user.role, isActive: user.isActive, deletedAt: user.deletedAt ?? null };
}

/**
 * User writes. Each runs in its own transaction on the request's fork, and appends its audit entry
 * (who, what, the changed fields before and after) in that same transaction: a write that rolls back
 * leaves no entry.
 */
export const userService = {
  async createUser(deps: UserWriteDeps, input: CreateUserInput): Promise<User> {
    const email = normalizeEmail(input.email);
    try {
      return await inTransaction(deps.em, async (tx) => {
        const actor = deps.audit.actorId ? tx.getReference(User, deps.audit.actorId, { wrapped: true }) : null;
        const user = tx.getRepository(User).createNew({
          email,
          name: input.name.trim(),
          role: input.role ?? Role.USER,
          isActive: input.isActive ?? true,
          createdBy: actor,
          updatedBy: actor,
        });
        await tx.flush();
        await tx.getRepository(AuditLogEntry).append(deps.audit, [
          { entityType: AuditEntityType.USER, entityId: user.id, action: 'create', before: null, after: snapshot(user) },
        ]);
        return user;
      });
    } catch (err) {
      if (err instanceof UniqueConstraintViolationException) throw emailTaken(email);
      throw err;
    }
  },

  /** A USER may change their own email and name; role and isActive are for ADMINs. */
  async updateUser(deps: UserWriteDeps, viewer: Viewer, id: number, input: UpdateUserInput): Promise<User> {
    if (viewer.role !== Role.ADMIN) {
      if (viewer.id !== id) throw new NotFoundError('User');
      if (input.role != null || input.isActive != null) throw new ForbiddenError('Only an ADMIN may change role or isActive');
    }
    const data: Partial<Pick<User, 'email' | 'name' | 'role' | 'isActive'>> = {};
    if (input.email != null) data.email = normalizeEmail(input.email);
    if (input.name != null) data.name = input.name.trim();
    if (input.role != null) data.role = input.role;
    if (input.isActive != null) data.isActive = input.isActive;
    try {
      return await inTransaction(deps.em, async (tx) => {
        const user = await tx.getRepository(User).getForUpdate(id);
        if (!user) throw new NotFoundError('User');
        const before = snapshot(user);
        tx.assign(user, data);
        const changes = changedFields(before, snapshot(user));
        if (!changes) return user;
        if (deps.audit.actorId) user.updatedBy = tx.getReference(User, deps.audit.actorId, { wrapped: true });
        await tx.flush();
        await tx.getRepository(AuditLogEntry).append(deps.audit, [{ entityType: AuditEntityType.USER, entityId: id, action: 'update', ...changes }]);
        return user;
      });
    } catch (err) {
      if (err instanceof UniqueConstraintViolationException) throw emailTaken(data.email ?? '');
      throw err;
    }
  },

  /**
   * Soft delete: the user disappears from every read and lookup, their tokens stop working at once, and
   * their payments stay (financial records), still showing their user to ADMINs.
   */
  async deleteUser(deps: UserWriteDeps, id: number): Promise<boolean> {
    return inTransaction(deps.em, async (tx) => {
      const user = await tx.getRepository(User).getForUpdate(id);
      if (!user) throw new NotFoundError('User');
      const before = snapshot(user);
      user.deletedAt = new Date();
      if (deps.audit.actorId) user.updatedBy = tx.getReference(User, deps.audit.actorId, { wrapped: true });
      await tx.flush();
      const changes = changedFields(before, snapshot(user))!;
      await tx.getRepository(AuditLogEntry).append(deps.audit, [{ entityType: AuditEntityType.USER, entityId: id, action: 'delete', ...changes }]);
      return true;
    });
  },
};
