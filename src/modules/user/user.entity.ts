import { Check, Collection, Entity, EntityRepositoryType, Enum, OptionalProps, OneToMany, PrimaryKey, Property, Unique } from '@mikro-orm/core';
import { Payment } from '../payment/payment.entity.js';
import { UserRepository } from './user.repository.js';

export enum Role {
  USER = 'USER',
  ADMIN = 'ADMIN',
}

@Entity({ tableName: 'users', repository: () => UserRepository })
@Check({ name: 'users_email_lower', expression: 'email = lower(email)' })
export class User {
  [EntityRepositoryType]?: UserRepository;
  [OptionalProps]?: 'isActive' | 'role' | 'createdAt' | 'updatedAt';

  @PrimaryKey({ type: 'integer', autoincrement: true })
  id!: number;

  /** Always stored lower-case (see `normalizeEmail`), so the unique index is case-insensitive in effect. */
  @Unique({ name: 'users_email_unique' })
  @Property({ type: 'string', length: 320 })
  email!: string;

  @Property({ type: 'string', length: 200 })
  name!: string;

  @Property({ type: 'boolean', default: true })
  isActive: boolean = true;

  @Enum({ items: () => Role, type: 'string', default: Role.USER })
  role: Role = Role.USER;

  @Property({ type: 'datetime', length: 3, defaultRaw: 'now()' })
  createdAt: Date = new Date();

  @Property({ type: 'datetime', length: 3, defaultRaw: 'now()', onUpdate: () => new Date() })
  updatedAt: Date = new Date();

  @OneToMany({ entity: () => Payment, mappedBy: 'user' })
  payments = new Collection<Payment>(this);
}

export function normalizeEmail(email: string): string {
  return email.trim().toLowerCase();
}
