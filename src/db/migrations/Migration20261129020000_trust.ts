import { PaygraphMigration } from '../migration.js';

/**
 * Trust: intermediate payment states, soft-deleted users (a deleted user's email may be used again),
 * who created and last changed each row, refunds in flight for reconciliation, and the append-only
 * audit log.
 */
export class Migration20261129020000_trust extends PaygraphMigration {
  protected override async change(): Promise<void> {
    this.addSql(`alter table "payments" drop constraint if exists "payments_status_check";`);
    this.addSql(`alter table "payments" add constraint "payments_status_check"
      check ("status" in ('PENDING', 'REQUIRES_ACTION', 'PROCESSING', 'COMPLETED', 'FAILED', 'REFUNDED', 'CANCELED'));`);

    this.addSql(`alter table "users"
      add column "deleted_at" timestamptz(3) null,
      add column "created_by" int null,
      add column "updated_by" int null;`);
    this.addSql(`alter table "users" drop constraint "users_email_unique";`);
    this.addSql(`create unique index "users_email_unique" on "users" ("email") where "deleted_at" is null;`);
    this.addSql(`alter table "users" add constraint "users_created_by_foreign" foreign key ("created_by") references "users" ("id") on update cascade on delete set null;`);
    this.addSql(`alter table "users" add constraint "users_updated_by_foreign" foreign key ("updated_by") references "users" ("id") on update cascade on delete set null;`);

    this.addSql(`alter table "payments"
      add column "refund_requested_total" int not null default 0,
      add column "refund_requested_at" timestamptz(3) null,
      add column "created_by" int null,
      add column "updated_by" int null;`);
    this.addSql(`alter table "payments" add constraint "payments_created_by_foreign" foreign key ("created_by") references "users" ("id") on update cascade on delete set null;`);
    this.addSql(`alter table "payments" add constraint "payments_updated_by_foreign" foreign key ("updated_by") references "users" ("id") on update cascade on delete set null;`);
    this.addSql(`create index "payments_unsettled_index" on "payments" ("updated_at") where "status" in ('PENDING', 'REQUIRES_ACTION', 'PROCESSING') and "stripe_payment_id" is not null;`);
    this.addSql(`create index "payments_refund_in_flight_index" on "payments" ("refund_requested_at") where "refund_requested_total" > "amount_refunded";`);

    this.addSql(`create table "audit_log" (
      "id" bigserial primary key,
      "actor_type" text check ("actor_type" in ('USER', 'STRIPE', 'RECONCILER')) not null,
      "actor_id" int null,
      "entity_type" text check ("entity_type" in ('USER', 'PAYMENT')) not null,
      "entity_id" int not null,
      "action" varchar(64) not null,
      "before" jsonb null,
      "after" jsonb null,
      "request_id" varchar(255) null,
      "created_at" timestamptz(3) not null default now());`);
    this.addSql(`create index "audit_log_entity_index" on "audit_log" ("entity_type", "entity_id", "id" desc);`);
    // Append-only whoever asks: the app never updates or deletes an entry, and the database refuses to.
    this.addSql(`create function audit_log_append_only() returns trigger language plpgsql as $$
      begin raise exception 'audit_log is append-only: % refused', tg_op; end $$;`);
    this.addSql(`create trigger audit_log_append_only before update or delete on "audit_log"
      for each row execute function audit_log_append_only();`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "audit_log";`);
    this.addSql(`drop function if exists audit_log_append_only();`);
    this.addSql(`drop index if exists "payments_unsettled_index";`);
    this.addSql(`drop index if exists "payments_refund_in_flight_index";`);
    this.addSql(`alter table "payments" drop constraint if exists "payments_created_by_foreign", drop constraint if exists "payments_updated_by_foreign";`);
    this.addSql(`alter table "payments" drop column "refund_requested_total", drop column "refund_requested_at", drop column "created_by", drop column "updated_by";`);
    this.addSql(`alter table "users" drop constraint if exists "users_created_by_foreign", drop constraint if exists "users_updated_by_foreign";`);
    this.addSql(`drop index if exists "users_email_unique";`);
    this.addSql(`alter table "users" add constraint "users_email_unique" unique ("email");`);
    this.addSql(`alter table "users" drop column "deleted_at", drop column "created_by", drop column "updated_by";`);
    this.addSql(`alter table "payments" drop constraint if exists "payments_status_check";`);
    this.addSql(`alter table "payments" add constraint "payments_status_check" check ("status" in ('PENDING', 'COMPLETED', 'FAILED', 'REFUNDED', 'CANCELED'));`);
  }
}
