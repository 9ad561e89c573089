import { ForeignKeyConstraintViolationException, UniqueConstraintViolationException } from '@mikro-orm/core';
import type { SqlEntityManager } from '@mikro-orm/postgresql';
import { normalizeEmail, Role, User } from './user.entity.js';
import { Payment } from '../payment/payment.entity.js';
import type { CreateUserInput, UpdateUserInput } from './user.inputs.js';
import { QueryHelper } from '../../core/query-helpers.js';
import { inTransaction } from '../../core/sql.js';
import { ConflictError, ForbiddenError, NotFoundError } from '../../core/errors.js';
import type { Viewer } from '../auth/auth.js';

export const userHelper = new QueryHelper(User, ['email', 'name', 'createdAt']);

function emailTaken(email: string): ConflictError {
  return new ConflictError(`a user with email ${email} already exists`);
}

/** User writes. Each runs in its own transaction on the request's fork. */
export const userService = {
  async createUser(em: SqlEntityManager, input: CreateUserInput): Promise<User> {
    const email = normalizeEmail(input.email);
    try {
      return await inTransaction(em, (tx) =>
        userHelper.create(tx, {
          email,
          name: input.name.trim(),
          role: input.role ?? Role.USER,
          isActive: input.isActive ?? true,
        }),
      );
    } catch (err) {
      if (err instanceof UniqueConstraintViolationException) throw emailTaken(email);
      throw err;
    }
  },

  /** A USER may change their own email and name; role and isActive are for ADMINs. */
  async updateUser(em: SqlEntityManager, viewer: Viewer, id: number, input: UpdateUserInput): Promise<User> {
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
      const user = await inTransaction(em, (tx) => userHelper.update(tx, id, data));
      if (!user) throw new NotFoundError('User');
      return user;
    } catch (err) {
      if (err instanceof UniqueConstraintViolationException) throw emailTaken(data.email ?? '');
      throw err;
    }
  },

  /** Refuses (CONFLICT, nothing deleted) while the user has payments: payment history is kept. */
  async deleteUser(em: SqlEntityManager, id: number): Promise<boolean> {
    const conflict = () => new ConflictError('the user has payments and cannot be deleted');
    try {
      return await inTransaction(em, async (tx) => {
        if ((await tx.getRepository(Payment).countUserPayments(id)) > 0) throw conflict();
        const deleted = await userHelper.delete(tx, id);
        if (!deleted) throw new NotFoundError('User');
        return true;
      });
    } catch (err) {
      // A payment inserted between the count and the delete: the foreign key says no.
      if (err instanceof ForeignKeyConstraintViolationException) throw conflict();
      throw err;
    }
  },
};
