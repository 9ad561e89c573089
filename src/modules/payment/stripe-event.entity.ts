import { Entity, EntityRepositoryType, Index, ManyToOne, PrimaryKey, Property, type Ref } from '@mikro-orm/core';
import { Payment } from './payment.entity.js';
import { StripeEventRepository } from './stripe-event.repository.js';

/**
 * Every Stripe webhook event we accepted, written in the same transaction as the change it caused:
 * its primary key is what makes a redelivered event change nothing.
 */
@Entity({ tableName: 'stripe_events', repository: () => StripeEventRepository })
export class StripeEvent {
  [EntityRepositoryType]?: StripeEventRepository;

  /** Stripe's event id (`evt_...`). */
  @PrimaryKey({ type: 'string', length: 255 })
  id!: string;

  @Property({ type: 'string', length: 255 })
  type!: string;

  /** The payment it concerned, when we know it. */
  @Index({ name: 'stripe_events_payment_id_index' })
  @ManyToOne({ entity: () => Payment, ref: true, nullable: true, deleteRule: 'set null' })
  payment?: Ref<Payment> | null;

  /** What processing did: `transitioned`, `ignored_transition`, `refund_recorded`, `unknown_payment_intent`, `ignored_type`. */
  @Property({ type: 'string', length: 64 })
  outcome!: string;

  @Property({ type: 'datetime', length: 3, defaultRaw: 'now()' })
  receivedAt: Date = new Date();

  @Property({ type: 'datetime', length: 3, nullable: true })
  processedAt?: Date | null;
}
