import { PaygraphMigration } from '../migration.js';

/** Users and payments, with the indexes the keyset-paginated reads need. */
export class Migration20261129000000_initial extends PaygraphMigration {
  protected override async change(): Promise<void> {
    this.addSql(`create table "users" (
      "id" serial primary key,
      "email" varchar(320) not null,
      "name" varchar(200) not null,
      "is_active" boolean not null default true,
      "role" text check ("role" in ('USER', 'ADMIN')) not null default 'USER',
      "created_at" timestamptz(3) not null default now(),
      "updated_at" timestamptz(3) not null default now(),
      constraint users_email_lower check (email = lower(email)));`);
    this.addSql(`alter table "users" add constraint "users_email_unique" unique ("email");`);

    this.addSql(`create table "payments" (
      "id" serial primary key,
      "user_id" int not null,
      "amount" int not null,
      "currency" varchar(3) not null,
      "status" text check ("status" in ('PENDING', 'COMPLETED', 'FAILED', 'REFUNDED', 'CANCELED')) not null default 'PENDING',
      "stripe_payment_id" varchar(255) null,
      "description" text null,
      "created_at" timestamptz(3) not null default now(),
      "updated_at" timestamptz(3) not null default now(),
      constraint payments_currency_iso check (currency ~ '^[a-z]{3}$'),
      constraint payments_amount_positive check (amount > 0));`);
    this.addSql(`alter table "payments" add constraint "payments_stripe_payment_id_unique" unique ("stripe_payment_id");`);
    this.addSql(`create index "payments_status_created_at_index" on "payments" ("status", "created_at" desc);`);
    this.addSql(`create index "payments_user_id_created_at_id_index" on "payments" ("user_id", "created_at" desc, "id" desc);`);
    this.addSql(`alter table "payments" add constraint "payments_user_id_foreign" foreign key ("user_id") references "users" ("id") on update cascade on delete restrict;`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "payments" cascade;`);
    this.addSql(`drop table if exists "users" cascade;`);
  }
}
