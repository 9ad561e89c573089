import { PaygraphMigration } from '../migration.js';

/**
 * The client's x-request-id, recorded beside the request's own (server-made) id in `request_id`.
 * A nullable column with no default: a catalog change, whatever the table's size.
 */
export class Migration20261201020000_client_request_id extends PaygraphMigration {
  protected override async change(): Promise<void> {
    this.addSql(`alter table "audit_log" add column "client_request_id" varchar(128) null;`);
  }

  override async down(): Promise<void> {
    this.addSql(`alter table "audit_log" drop column "client_request_id";`);
  }
}
