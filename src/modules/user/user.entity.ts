import { Check, Collection, Entity, EntityRepositoryType, Enum, Index, ManyToOne, OptionalProps, OneToMany, PrimaryKey, Property, type Ref } from '@mikro-orm/core';
import { Payment } from '../payment/payment.entity.js';
import { UserRepository } from './user.repository.js';

export enum Role {
  USER = 'USER',
  ADMIN = 'ADMIN',
}

@Entity({ tableName: 'users', repository: () => UserRepository })
@Check({ name: 'users_email_lower', expression: 'email = lower(email)' })
// Unique among users that are not deleted: a deleted user's email may be registered again.
@Index({
  name: 'users_email_unique',
  expression: 'create unique index "users_email_unique" on "users" ("email") where "deleted_at" is null',
})
// `users(filter)` pages walk one of these in id order, whatever the filter; `emailContains` uses the
// trigram index (Migration20261201040000_list_indexes).
@Index({ name: 'users_email_trgm_index', expression: 'create index "users_email_trgm_index" on "users" using gin ("email" gin_trgm_ops)' })
// One per combination of the filters, over users who exist and over deleted ones.
@Index({ name: 'users_live_id_index', expression: 'create index "users_live_id_index" on "users" ("id") where "deleted_at" is null' })
@Index({ name: 'users_live_active_id_index', expression: 'create index "users_live_active_id_index" on "users" ("is_active", "id") where "deleted_at" is null' })
@Index({ name: 'users_live_role_id_index', expression: 'create index "users_live_role_id_index" on "users" ("role", "id") where "deleted_at" is null' })
@Index({ name: 'users_live_active_role_id_index', expression: 'create index "users_live_active_role_id_index" on "users" ("is_active", "role", "id") where "deleted_at" is null' })
@Index({ name: 'users_deleted_id_index', expression: 'create index "users_deleted_id_index" on "users" ("id") where "deleted_at" is not null' })
@Index({ name: 'users_deleted_active_id_index', expression: 'create index "users_deleted_active_id_index" on "users" ("is_active", "id") where "deleted_at" is not null' })
@Index({ name: 'users_deleted_role_id_index', expression: 'create index "users_deleted_role_id_index" on "users" ("role", "id") where "deleted_at" is not null' })
@Index({ name: 'users_deleted_active_role_id_index', expression: 'create index "users_deleted_active_role_id_index" on "users" ("is_active", "role", "id") where "deleted_at" is not null' })
export class User {
  [EntityRepositoryType]?: UserRepository;
  [OptionalProps]?: 'isActive' | 'role' | 'createdAt' | 'updatedAt';

  @PrimaryKey({ type: 'integer', autoincrement: true })
  id!: number;

  /** Always stored lower-case (see `normalizeEmail`), so the unique index is case-insensitive in effect. */
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

  /** Soft delete: set, the user is gone from every read and their tokens stop working; their payments stay. */
  @Property({ type: 'datetime', length: 3, nullable: true })
  deletedAt?: Date | null;

  /** Who created / last changed this user (null: created by a seed or script). */
  @ManyToOne({ entity: () => User, ref: true, nullable: true, fieldName: 'created_by', deleteRule: 'set null' })
  createdBy?: Ref<User> | null;

  @ManyToOne({ entity: () => User, ref: true, nullable: true, fieldName: 'updated_by', deleteRule: 'set null' })
  updatedBy?: Ref<User> | null;

  @OneToMany({ entity: () => Payment, mappedBy: 'user' })
  payments = new Collection<Payment>(this);
}

export function normalizeEmail(email: string): string {
  return email.trim().toLowerCase();
}
