import { Check, Entity, EntityRepositoryType, Enum, OptionalProps, Index, ManyToOne, PrimaryKey, Property, Unique, type Ref } from '@mikro-orm/core';
import { User } from '../user/user.entity.js';
import { PaymentRepository } from './payment.repository.js';

export enum PaymentStatus {
  PENDING = 'PENDING',
  COMPLETED = 'COMPLETED',
  FAILED = 'FAILED',
  REFUNDED = 'REFUNDED',
  CANCELED = 'CANCELED',
}

// Keyset pagination reads (user_id, created_at desc, id desc) for a user's payments and
// (status, created_at desc) for the global list filtered by status.
@Entity({ tableName: 'payments', repository: () => PaymentRepository })
@Check({ name: 'payments_amount_positive', expression: 'amount > 0' })
@Check({ name: 'payments_currency_iso', expression: "currency ~ '^[a-z]{3}$'" })
@Check({ name: 'payments_amount_refunded_range', expression: 'amount_refunded >= 0 and amount_refunded <= amount' })
// One payment per (user, client idempotency key): a retried or concurrent createPayment finds it.
@Unique({ name: 'payments_user_id_idempotency_key_unique', properties: ['user', 'idempotencyKey'] })
@Index({
  name: 'payments_user_id_created_at_id_index',
  expression: 'create index "payments_user_id_created_at_id_index" on "payments" ("user_id", "created_at" desc, "id" desc)',
})
@Index({
  name: 'payments_status_created_at_index',
  expression: 'create index "payments_status_created_at_index" on "payments" ("status", "created_at" desc)',
})
export class Payment {
  [EntityRepositoryType]?: PaymentRepository;
  [OptionalProps]?: 'status' | 'amountRefunded' | 'stripeAttempt' | 'createdAt' | 'updatedAt';

  @PrimaryKey({ type: 'integer', autoincrement: true })
  id!: number;

  @ManyToOne({ entity: () => User, ref: true, deleteRule: 'restrict', updateRule: 'cascade' })
  user!: Ref<User>;

  /** Minor units (cents), always > 0. */
  @Property({ type: 'integer' })
  amount!: number;

  /** ISO 4217, lower-case, as Stripe spells it. */
  @Property({ type: 'string', length: 3 })
  currency!: string;

  @Enum({ items: () => PaymentStatus, type: 'string', default: PaymentStatus.PENDING })
  status: PaymentStatus = PaymentStatus.PENDING;

  @Unique({ name: 'payments_stripe_payment_id_unique' })
  @Property({ type: 'string', length: 255, nullable: true })
  stripePaymentId?: string | null;

  @Property({ type: 'text', nullable: true })
  description?: string | null;

  /** The client's key for createPayment; Stripe's own Idempotency-Key is derived from our id. */
  @Property({ type: 'string', length: 255, nullable: true })
  idempotencyKey?: string | null;

  /** Why Stripe declined or failed it, as Stripe said. */
  @Property({ type: 'text', nullable: true })
  failureReason?: string | null;

  /**
   * How many PaymentIntent creations Stripe answered with a server error. Stripe replays a saved 500
   * for the same Idempotency-Key, so each such answer moves us to a new key (`payment:<id>:<n>`).
   */
  @Property({ type: 'integer', default: 0 })
  stripeAttempt: number = 0;

  /** Minor units refunded so far (partial refunds keep the status COMPLETED). */
  @Property({ type: 'integer', default: 0 })
  amountRefunded: number = 0;

  @Property({ type: 'datetime', length: 3, defaultRaw: 'now()' })
  createdAt: Date = new Date();

  @Property({ type: 'datetime', length: 3, defaultRaw: 'now()', onUpdate: () => new Date() })
  updatedAt: Date = new Date();
}
