import { concurrentIndex, PaygraphMigration } from '../migration.js';

/**
 * Every list read served by an index in its own order (newest first for payments, by id for users),
 * for every filter the API offers, so that a page costs the same at any size of the tables:
 * - `payments (created_at desc, id desc)`: `payments(first)` of all users (before: a parallel scan of
 *   both tables and a sort of every row: 4.1 s at 5.5 million payments, 6.2 ms after);
 * - `payments (status, created_at desc, id desc)`, replacing `(status, created_at desc)`, which left the
 *   tie on `id` to a sort of every row of that status;
 * - `payments (user_id, status, created_at desc, id desc)`: one user's payments in one status (before:
 *   a walk of that user's payments that drops the other statuses, or of every payment in that status
 *   that drops the other users: either grows with the data);
 * - `users`: `pg_trgm` and a trigram GIN index on `email` for `emailContains` (a substring search:
 *   before, a scan of every user); and one index per combination of the filters of `users(filter)`,
 *   `(id)`, `(is_active, id)`, `(role, id)`, `(is_active, role, id)`, partial over the users who exist
 *   and over the deleted ones, so that every condition of a page is one its index answers.
 *
 * Built concurrently, outside a transaction: writes go on while they build. Measured on 5.5 million
 * payments and 200,000 users (this project's machine, `npm run bench -- --scale`, the previous build
 * serving createPayment meanwhile): 32 s in all; the three payment indexes 6.5 s, 13.6 s and 8.8 s,
 * the trigram index 1.9 s, the users' ones under 0.4 s each; writes meanwhile: 0 errors (the slowest
 * of the whole run of both migrations, 816 ms).
 */
export class Migration20261201040000_list_indexes extends PaygraphMigration {
  protected override readonly transactional = false;

  protected override async change(): Promise<void> {
    // A trusted extension since PostgreSQL 13: the database's owner may create it.
    this.addSql('create extension if not exists pg_trgm');
    for (const [name, definition] of INDEXES) {
      for (const sql of await concurrentIndex(this, name, definition)) this.addSql(sql);
    }
    this.addSql('drop index concurrently if exists "payments_status_created_at_index"');
  }

  override async down(): Promise<void> {
    for (const sql of await concurrentIndex(this, 'payments_status_created_at_index', '"payments" ("status", "created_at" desc)')) this.addSql(sql);
    for (const [name] of INDEXES) this.addSql(`drop index concurrently if exists "${name}"`);
  }
}

const INDEXES: [name: string, definition: string][] = [
  ['payments_created_at_id_index', '"payments" ("created_at" desc, "id" desc)'],
  ['payments_status_created_at_id_index', '"payments" ("status", "created_at" desc, "id" desc)'],
  ['payments_user_id_status_created_at_id_index', '"payments" ("user_id", "status", "created_at" desc, "id" desc)'],
  ['users_email_trgm_index', '"users" using gin ("email" gin_trgm_ops)'],
  // One per combination of the filters, over users who exist and over deleted ones (few: small indexes).
  ['users_live_id_index', '"users" ("id") where "deleted_at" is null'],
  ['users_live_active_id_index', '"users" ("is_active", "id") where "deleted_at" is null'],
  ['users_live_role_id_index', '"users" ("role", "id") where "deleted_at" is null'],
  ['users_live_active_role_id_index', '"users" ("is_active", "role", "id") where "deleted_at" is null'],
  ['users_deleted_id_index', '"users" ("id") where "deleted_at" is not null'],
  ['users_deleted_active_id_index', '"users" ("is_active", "id") where "deleted_at" is not null'],
  ['users_deleted_role_id_index', '"users" ("role", "id") where "deleted_at" is not null'],
  ['users_deleted_active_role_id_index', '"users" ("is_active", "role", "id") where "deleted_at" is not null'],
];
