import { PaygraphMigration } from '../migration.js';

/**
 * How many refund requests of a payment Stripe answered with a server error (see Payment.refundAttempt).
 * A column with a constant default: PostgreSQL 11+ adds it without rewriting the table (a catalog
 * change under a brief ACCESS EXCLUSIVE lock, whatever the table's size).
 */
export class Migration20261201010000_refund_attempt extends PaygraphMigration {
  protected override async change(): Promise<void> {
    this.addSql(`alter table "payments" add column "refund_attempt" int not null default 0;`);
  }

  override async down(): Promise<void> {
    this.addSql(`alter table "payments" drop column "refund_attempt";`);
  }
}
