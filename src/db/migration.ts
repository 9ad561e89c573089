import { Migration } from '@mikro-orm/migrations';

/** What `migrate` (src/db/orm.ts) gives every migration, through the migrations options. */
export interface MigrationSession {
  /** lock_timeout of each statement: a lock held longer by others fails the migration. */
  lockTimeoutMs: number;
}

/**
 * Every migration of paygraph. Its statements come from `change()`, with the settings of the run: no
 * statement timeout (an index on a large table takes what it takes) and `lockTimeoutMs` on every lock
 * it waits for, so a migration stuck behind traffic fails instead of making all traffic queue behind
 * its own lock. A migration runs in a transaction of its own (the settings `set local` in it), unless
 * it sets `transactional = false`: `create index concurrently` and batched backfills, whose statements
 * commit one by one, on a direct connection that carries the same settings from its start (`migrate`
 * refuses them behind a transaction-mode pooler).
 */
export abstract class PaygraphMigration extends Migration {
  /** False for statements that cannot run inside a transaction block, or must commit one by one. */
  protected readonly transactional: boolean = true;

  override isTransactional(): boolean {
    return this.transactional;
  }

  override async up(): Promise<void> {
    const session = (this.config.get('migrations') as { session?: MigrationSession }).session;
    if (session && this.transactional) {
      this.addSql('set local statement_timeout = 0');
      this.addSql(`set local lock_timeout = ${Math.trunc(session.lockTimeoutMs)}`);
    }
    await this.change();
  }

  /** The migration's own statements (`this.addSql`, `this.execute`). */
  protected abstract change(): Promise<void>;
}

/**
 * Statements that build an index without blocking writes (`create index concurrently`), for a migration
 * with `transactional = false`. A build that failed half-way (a lock timeout, a restart) leaves an
 * invalid index under the name: it is dropped and built again, so running the migration again mends it.
 * `definition` is what follows `on`: `"payments" ("created_at" desc, "id" desc)`.
 */
export async function concurrentIndex(migration: Migration, name: string, definition: string): Promise<string[]> {
  const [existing] = await migration.execute(
    `select i.indisvalid as valid from pg_index i join pg_class c on c.oid = i.indexrelid where c.relname = '${name}' and c.relnamespace = current_schema()::regnamespace`,
  );
  if ((existing as { valid?: boolean } | undefined)?.valid === true) return [];
  return [...(existing ? [`drop index concurrently if exists "${name}"`] : []), `create index concurrently "${name}" on ${definition}`];
}
