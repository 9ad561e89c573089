import { Check, Entity, EntityRepositoryType, Enum, OptionalProps, Index, ManyToOne, PrimaryKey, Property, Unique, type Ref } from '@mikro-orm/core';
import { User } from '../user/user.entity.js';
import { PaymentRepository } from './payment.repository.js';

export enum PaymentStatus {
  PENDING = 'PENDING',
  /** Waiting for the customer: Stripe asks for an action (3-D Secure authentication, a redirect). */
  REQUIRES_ACTION = 'REQUIRES_ACTION',
  /** Waiting for the bank: the payment method was accepted and the charge is being processed. */
  PROCESSING = 'PROCESSING',
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
// Every list read walks one of these in its own order, whatever the filter (Migration20261201040000_list_indexes).
@Index({
  name: 'payments_created_at_id_index',
  expression: 'create index "payments_created_at_id_index" on "payments" ("created_at" desc, "id" desc)',
})
@Index({
  name: 'payments_status_created_at_id_index',
  expression: 'create index "payments_status_created_at_id_index" on "payments" ("status", "created_at" desc, "id" desc)',
})
@Index({
  name: 'payments_user_id_status_created_at_id_index',
  expression: 'create index "payments_user_id_status_created_at_id_index" on "payments" ("user_id", "status", "created_at" desc, "id" desc)',
})
// What reconciliation looks for: payments Stripe may still move on (in the order they are due), refunds
// still in flight, and payments abandoned long enough to expire.
@Index({
  name: 'payments_reconcile_due_index',
  expression: `create index "payments_reconcile_due_index" on "payments" ((coalesce("reconcile_due_at", "updated_at"))) where "status" in ('PENDING', 'REQUIRES_ACTION', 'PROCESSING') and "stripe_payment_id" is not null`,
})
@Index({
  name: 'payments_expirable_index',
  expression: `create index "payments_expirable_index" on "payments" ("created_at") where "status" in ('PENDING', 'REQUIRES_ACTION')`,
})
@Index({
  name: 'payments_refund_in_flight_index',
  expression: 'create index "payments_refund_in_flight_index" on "payments" ("refund_requested_at") where "refund_requested_total" > "amount_refunded"',
})
export class Payment {
  [EntityRepositoryType]?: PaymentRepository;
  [OptionalProps]?: 'status' | 'amountRefunded' | 'stripeAttempt' | 'refundAttempt' | 'reconcileChecks' | 'createdAt' | 'updatedAt' | 'refundRequestedTotal';

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

  /**
   * How many refund requests Stripe answered with a server error. As for intents, Stripe replays a
   * saved 500 under its key, so the next try uses a new one; and as a 500 leaves open whether the
   * refund was made, that try first asks Stripe for the payment's refunds (see `refundPayment`).
   */
  @Property({ type: 'integer', default: 0 })
  refundAttempt: number = 0;

  /** Minor units refunded so far (partial refunds keep the status COMPLETED). */
  @Property({ type: 'integer', default: 0 })
  amountRefunded: number = 0;

  @Property({ type: 'datetime', length: 3, defaultRaw: 'now()' })
  createdAt: Date = new Date();

  @Property({ type: 'datetime', length: 3, defaultRaw: 'now()', onUpdate: () => new Date() })
  updatedAt: Date = new Date();

  /**
   * The refunded total the refunds we asked Stripe for add up to (`refundPayment`); above
   * `amountRefunded` while a refund is in flight, which reconciliation then settles.
   */
  @Property({ type: 'integer', default: 0 })
  refundRequestedTotal: number = 0;

  @Property({ type: 'datetime', length: 3, nullable: true })
  refundRequestedAt?: Date | null;

  /**
   * Reconciliation's schedule (bookkeeping, not the payment's state, so not audited): when it is next
   * asked about while unsettled (null: `updated_at` + RECONCILE_AFTER_SECONDS), and how many times it
   * was; each check pushes the next one back, twice as far as the last (see the reconciler).
   */
  @Property({ type: 'datetime', length: 3, nullable: true })
  reconcileDueAt?: Date | null;

  @Property({ type: 'integer', default: 0 })
  reconcileChecks: number = 0;

  /** The user who created it; who last changed it (null when Stripe or the reconciler did). */
  @ManyToOne({ entity: () => User, ref: true, nullable: true, fieldName: 'created_by', deleteRule: 'set null' })
  createdBy?: Ref<User> | null;

  @ManyToOne({ entity: () => User, ref: true, nullable: true, fieldName: 'updated_by', deleteRule: 'set null' })
  updatedBy?: Ref<User> | null;
}
