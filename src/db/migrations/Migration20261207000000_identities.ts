import { PaygraphMigration } from '../migration.js';

/**
 * Identities at an OpenID Connect provider (OIDC_ISSUER): the provider's subject of a paygraph user,
 * made at their first sign-in (src/modules/identity). A new, empty table: no lock on existing ones.
 */
export class Migration20261207000000_identities extends PaygraphMigration {
  protected override async change(): Promise<void> {
    this.addSql(`create table "user_identities" (
      "issuer" text not null,
      "subject" text not null,
      "user_id" int not null references "users" ("id"),
      "created_at" timestamptz(3) not null default now(),
      primary key ("issuer", "subject"));`);
    this.addSql(`create index "user_identities_user_id_index" on "user_identities" ("user_id");`);
  }

  override async down(): Promise<void> {
    this.addSql('drop table if exists "user_identities";');
  }
}
