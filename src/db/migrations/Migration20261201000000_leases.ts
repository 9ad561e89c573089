import { PaygraphMigration } from '../migration.js';

/**
 * Leases: a row names the one process allowed to run something (`single-instance`: a server declared
 * the only one, SINGLE_INSTANCE=true). A new, empty table: no lock on existing ones.
 */
export class Migration20261201000000_leases extends PaygraphMigration {
  protected override async change(): Promise<void> {
    this.addSql(`create table "instance_leases" (
      "name" text primary key,
      "holder" text not null,
      "expires_at" timestamptz not null
    );`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "instance_leases";`);
  }
}
