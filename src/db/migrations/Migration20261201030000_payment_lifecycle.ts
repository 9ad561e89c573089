import { PaygraphMigration } from '../migration.js';

/**
 * Reconciliation keeps moving, and abandoned payments end:
 * - `reconcile_due_at` / `reconcile_checks`: when a payment still unsettled is next asked about, and
 *   how often it was (each check pushes it back, longer each time), so a batch never holds the same
 *   abandoned payments; the reconciler reads them in due order through `payments_reconcile_due_index`
 *   (it replaces `payments_unsettled_index`, which ordered by `updated_at` alone).
 * - `payments_expirable_index`: PENDING and REQUIRES_ACTION payments by age, for their expiry.
 * Columns with constant defaults (no rewrite); the indexes are partial, over unsettled payments only.
 */
export class Migration20261201030000_payment_lifecycle extends PaygraphMigration {
  protected override async change(): Promise<void> {
    this.addSql(`alter table "payments" add column "reconcile_due_at" timestamptz(3) null, add column "reconcile_checks" int not null default 0;`);
    this.addSql(`drop index if exists "payments_unsettled_index";`);
    this.addSql(`create index "payments_reconcile_due_index" on "payments" ((coalesce("reconcile_due_at", "updated_at"))) where "status" in ('PENDING', 'REQUIRES_ACTION', 'PROCESSING') and "stripe_payment_id" is not null;`);
    this.addSql(`create index "payments_expirable_index" on "payments" ("created_at") where "status" in ('PENDING', 'REQUIRES_ACTION');`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop index if exists "payments_expirable_index";`);
    this.addSql(`drop index if exists "payments_reconcile_due_index";`);
    this.addSql(`create index "payments_unsettled_index" on "payments" ("updated_at") where "status" in ('PENDING', 'REQUIRES_ACTION', 'PROCESSING') and "stripe_payment_id" is not null;`);
    this.addSql(`alter table "payments" drop column "reconcile_due_at", drop column "reconcile_checks";`);
  }
}
