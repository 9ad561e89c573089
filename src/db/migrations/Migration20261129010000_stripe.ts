import { PaygraphMigration } from '../migration.js';

/** Payments through Stripe: the client's idempotency key, failure reason, refunded amount, and the webhook event log. */
export class Migration20261129010000_stripe extends PaygraphMigration {
  protected override async change(): Promise<void> {
    this.addSql(`alter table "payments"
      add column "idempotency_key" varchar(255) null,
      add column "failure_reason" text null,
      add column "amount_refunded" int not null default 0,
      add column "stripe_attempt" int not null default 0;`);
    this.addSql(`alter table "payments" add constraint "payments_user_id_idempotency_key_unique" unique ("user_id", "idempotency_key");`);
    this.addSql(`alter table "payments" add constraint payments_amount_refunded_range check (amount_refunded >= 0 and amount_refunded <= amount);`);

    this.addSql(`create table "stripe_events" (
      "id" varchar(255) not null,
      "type" varchar(255) not null,
      "payment_id" int null,
      "outcome" varchar(64) not null,
      "received_at" timestamptz(3) not null default now(),
      "processed_at" timestamptz(3) null,
      constraint "stripe_events_pkey" primary key ("id"));`);
    this.addSql(`create index "stripe_events_payment_id_index" on "stripe_events" ("payment_id");`);
    this.addSql(`alter table "stripe_events" add constraint "stripe_events_payment_id_foreign" foreign key ("payment_id") references "payments" ("id") on update cascade on delete set null;`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "stripe_events";`);
    this.addSql(`alter table "payments" drop constraint if exists "payments_user_id_idempotency_key_unique";`);
    this.addSql(`alter table "payments" drop constraint if exists payments_amount_refunded_range;`);
    this.addSql(`alter table "payments" drop column "idempotency_key", drop column "failure_reason", drop column "amount_refunded", drop column "stripe_attempt";`);
  }
}
