import { Entity, EntityRepositoryType, Enum, Index, PrimaryKey, Property } from '@mikro-orm/core';
import { AuditLogRepository } from './audit.repository.js';

/** What an entry is about. */
export enum AuditEntityType {
  USER = 'USER',
  PAYMENT = 'PAYMENT',
}

/** Who made a change: a signed-in user, Stripe (a webhook event), or the reconciliation job. */
export enum AuditActorType {
  USER = 'USER',
  STRIPE = 'STRIPE',
  RECONCILER = 'RECONCILER',
}

/**
 * One change, append-only: written in the same transaction as the change it records, never updated
 * or deleted (a trigger refuses both, whoever asks). `before` and `after` hold the changed fields only.
 */
@Entity({ tableName: 'audit_log', repository: () => AuditLogRepository })
@Index({
  name: 'audit_log_entity_index',
  expression: 'create index "audit_log_entity_index" on "audit_log" ("entity_type", "entity_id", "id" desc)',
})
export class AuditLogEntry {
  [EntityRepositoryType]?: AuditLogRepository;

  @PrimaryKey({ type: 'bigint', autoincrement: true })
  id!: string;

  @Enum({ items: () => AuditActorType, type: 'string' })
  actorType!: AuditActorType;

  /** The user, for USER actors; Stripe's event id for STRIPE is in `requestId`. */
  @Property({ type: 'integer', nullable: true })
  actorId?: number | null;

  @Enum({ items: () => AuditEntityType, type: 'string' })
  entityType!: AuditEntityType;

  @Property({ type: 'integer' })
  entityId!: number;

  /** `create`, `update`, `delete`, `cancel_requested`, `refund_requested`, `status_changed`, `refund_recorded`... */
  @Property({ type: 'string', length: 64 })
  action!: string;

  @Property({ type: 'json', nullable: true })
  before?: Record<string, unknown> | null;

  @Property({ type: 'json', nullable: true })
  after?: Record<string, unknown> | null;

  /** The request that made it (its server-made id), or the Stripe event id, or the reconciliation run. */
  @Property({ type: 'string', length: 255, nullable: true })
  requestId?: string | null;

  /** The `x-request-id` the client sent with that request, if any (recorded, not trusted as identity). */
  @Property({ type: 'string', length: 128, nullable: true })
  clientRequestId?: string | null;

  @Property({ type: 'datetime', length: 3, defaultRaw: 'now()' })
  createdAt: Date = new Date();
}
