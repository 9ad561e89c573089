import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { buildSchema, GraphQLBoolean, GraphQLEnumType, GraphQLID, GraphQLInputObjectType, GraphQLObjectType, GraphQLString, getNamedType, type GraphQLArgument, type GraphQLField, type GraphQLInputType } from 'graphql';
import { createTestApp, type TestApp } from '../helpers/test-app.js';
import { projectRoot } from '../helpers/server-process.js';

/**
 * Every list read, for every filter the API offers, must be one that an index serves in its own
 * order: then a page costs the same at 5 million payments as at 500 (docs/scaling.md). The database
 * here is small, where any plan is fast, so the test asks PostgreSQL what it would do if it could not
 * scan or sort a table: each statement a read sends is explained with sequential scans and sorts
 * disabled, and its plan must have neither a sequential scan of `payments` or `users` nor a sort of
 * their rows (a sort above a LIMIT of one user's page, as the batched pages do, sorts that page only),
 * nor a condition its index does not answer (a walk of an index in order that drops rows by a filter
 * reads every row before the page's).
 * The email search is a substring match, which no b-tree orders: its plan must use the trigram index,
 * and may sort the matches. Counts must not read the rows they count at all.
 *
 * The filters come from the schema: every combination of every argument of `payments`,
 * `paymentHistory`, `User.payments` and every field of `UserFilter`, so a filter added without its
 * index fails here.
 */

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Name'?: string;
  /** A condition checked on each row the scan reads (rather than one its index answers). */
  Filter?: string;
  Plans?: PlanNode[];
}

const GROWING = new Set(['payments', 'users']);

/**
 * The planner's settings for "could an index serve it in order": no sequential scan, no sort, and a
 * cost model in which every row read costs much (as it does when the table is large), so that among
 * the indexes it picks the one that reads only the page's rows, not the one this small table happens
 * to have in heap order.
 */
const ORDERED = { enable_seqscan: 'off', enable_sort: 'off', enable_incremental_sort: 'off', random_page_cost: '1', cpu_tuple_cost: '1' };

/** What is wrong with a plan: scans and sorts of the growing tables, and whether the trigram index is used. */
interface Found {
  seqScans: string[];
  sorts: string[];
  filters: string[];
  /** The indexes walked with a filter. */
  filteringIndexes: string[];
  trigram: boolean;
  tablesRead: Set<string>;
}

function inspect(plan: PlanNode): Found {
  const found: Found = { seqScans: [], sorts: [], filters: [], filteringIndexes: [], trigram: false, tablesRead: new Set() };
  const scansBelow = (node: PlanNode): string[] => {
    // A LIMIT bounds what reaches the sort above it (one user's page of a batch).
    if (node['Node Type'] === 'Limit') return [];
    const own = node['Relation Name'] && GROWING.has(node['Relation Name']) ? [node['Relation Name']] : [];
    return [...own, ...(node.Plans ?? []).flatMap(scansBelow)];
  };
  const walk = (node: PlanNode) => {
    if (node['Relation Name']) found.tablesRead.add(node['Relation Name']);
    if (node['Node Type'] === 'Seq Scan' && GROWING.has(node['Relation Name']!)) found.seqScans.push(node['Relation Name']!);
    // An ordered walk of an index that drops rows by a condition of the read reads rows it does not
    // return: as many as there are before the page's rows, which grows with the data.
    if (node.Filter && GROWING.has(node['Relation Name']!)) {
      found.filters.push(`${node['Relation Name']}: ${node.Filter}`);
      if (node['Index Name']) found.filteringIndexes.push(node['Index Name']);
    }
    if (node['Node Type'] === 'Sort' || node['Node Type'] === 'Incremental Sort') found.sorts.push(...(node.Plans ?? []).flatMap(scansBelow));
    if (node['Index Name'] === 'users_email_trgm_index') found.trigram = true;
    for (const child of node.Plans ?? []) walk(child);
  };
  walk(plan);
  return found;
}

/** Sample values of an argument or input field: each a variant the reads must serve. */
function samples(type: GraphQLInputType): unknown[] {
  const named = getNamedType(type);
  if (named === GraphQLBoolean) return [true, false];
  if (named === GraphQLID) return ['5'];
  if (named === GraphQLString) return ['er1'];
  if (named instanceof GraphQLEnumType) return named.getValues().map((v) => v.name);
  throw new Error(`no samples for the filter type ${named.name}: teach this test about it`);
}

/** Every combination of the given filters (each absent, or one of its samples). */
function combinations(fields: readonly { name: string; type: GraphQLInputType }[]): Record<string, unknown>[] {
  return fields.reduce<Record<string, unknown>[]>(
    (acc, f) => acc.flatMap((c) => [c, ...samples(f.type).map((v) => ({ ...c, [f.name]: v }))]),
    [{}],
  );
}

const filterArgs = (field: GraphQLField<unknown, unknown>) => field.args.filter((a: GraphQLArgument) => a.name !== 'first' && a.name !== 'after');
const literal = (v: unknown) => (typeof v === 'string' && !/^[A-Z_]+$/.test(v) ? JSON.stringify(v) : String(v));
const argsText = (args: Record<string, unknown>): string => Object.entries(args).map(([k, v]) => `${k}: ${k === 'filter' ? `{ ${argsText(v as Record<string, unknown>)} }` : literal(v)}`).join(', ');

describe('query plans: every list read is served by an index in its own order, every count by counters', () => {
  let t: TestApp;
  let admin: string;
  let user5: string;
  let explain: pg.Client;
  let sent: string[] | null = null;
  let usersIndexes: string[] = [];
  /** Indexes of the growing tables that no constraint needs (a test's transaction may drop them). */
  let droppable: string[] = [];
  // The committed schema (npm run schema:check keeps it the one the server builds).
  const schema = buildSchema(readFileSync(path.join(projectRoot, 'schema.graphql'), 'utf8'));
  const query = schema.getQueryType()!.getFields();
  const userFields = (schema.getType('User') as GraphQLObjectType).getFields();
  const userFilter = (schema.getType('UserFilter') as GraphQLInputObjectType).getFields();

  beforeAll(async () => {
    t = await createTestApp({ seed: { users: 60, paymentsPerUser: 12 } });
    await t.sql("update users set deleted_at = now() where id % 9 = 0 and id > 1");
    await t.sql('analyze');
    admin = await t.adminToken();
    user5 = await t.userToken(5);
    explain = new pg.Client({ connectionString: t.db.url });
    await explain.connect();
    // The indexes of users that are not constraints (the primary key stays).
    droppable = (
      await t.sql<{ name: string }>(
        `select c.relname as name from pg_index i join pg_class c on c.oid = i.indexrelid
         where i.indrelid in ('users'::regclass, 'payments'::regclass) and not exists (select 1 from pg_constraint k where k.conindid = i.indexrelid)`,
      )
    ).map((r) => r.name);
    usersIndexes = droppable.filter((name) => name.startsWith('users_'));
    // Every statement as PostgreSQL received it: MikroORM inlines the parameters into the text it
    // sends (the request's debug extension shows them as `?`).
    const logger = t.app.orm.config.getLogger();
    const logQuery = logger.logQuery.bind(logger);
    const platform = t.app.orm.em.getPlatform();
    logger.logQuery = (context) => {
      sent?.push(platform.formatQuery(context.query ?? '', (context as { params?: unknown[] }).params ?? []));
      logQuery(context);
    };
  });
  afterAll(async () => {
    await explain?.end();
    await t?.close();
  });

  /**
   * The plan of one statement, with `settings` for the transaction that explains it, and without the
   * indexes of `users` named in `without` (dropped in that transaction, which is rolled back).
   */
  async function planOf(sql: string, settings: Record<string, string>, without: string[] = []): Promise<PlanNode> {
    await explain.query('begin');
    try {
      for (const [name, value] of Object.entries(settings)) await explain.query(`set local ${name} = ${value}`);
      for (const index of without) await explain.query(`drop index "${index}"`);
      const { rows } = await explain.query<{ 'QUERY PLAN': [{ Plan: PlanNode }] }>(`explain (format json) ${sql}`).catch((err: Error) => {
        throw new Error(`${err.message}, explaining: ${sql}`);
      });
      return rows[0]!['QUERY PLAN'][0].Plan;
    } finally {
      await explain.query('rollback');
    }
  }

  /**
   * The plan of `sql` under ORDERED, and if it walks an index with a filter (on a small table, the
   * planner may find two indexes equally cheap), the plan without that index, and so on: a read passes
   * when some index serves it whole, in order.
   */
  async function bestOrderedPlan(sql: string): Promise<Found> {
    const without: string[] = [];
    for (;;) {
      const found = inspect(await planOf(sql, ORDERED, without));
      const next = found.filteringIndexes.find((name) => droppable.includes(name) && !without.includes(name));
      if (!next || found.sorts.length > 0 || found.seqScans.length > 0) return found;
      without.push(next);
    }
  }

  /** Runs `operation` and checks the plan of every statement it sent; answers the response's data. */
  async function check(operation: string, token: string, expectCount = false): Promise<Record<string, any>> {
    sent = [];
    const r = await t.gql(operation, { token });
    const statements = sent;
    sent = null;
    expect(r.body.errors, operation).toBeUndefined();
    expect(statements.length, operation).toBe(r.statements);
    for (const sql of statements) {
      if (!/^\s*select\b/i.test(sql)) continue;
      const search = / like /i.test(sql);
      const counting = /count\(/i.test(sql);
      // The email search may sort its matches; it must be able to find them through the trigram index.
      // On a table this small a bitmap of a whole partial index costs less, so the others are left out.
      const found = search
        ? inspect(await planOf(sql, { enable_seqscan: 'off', enable_indexscan: 'off', enable_indexonlyscan: 'off' }, usersIndexes.filter((i) => i !== 'users_email_trgm_index')))
        : await bestOrderedPlan(sql);
      expect(found.seqScans, `${operation}\n${sql}`).toEqual([]);
      // (A later page of a search adds an id range, which the primary key serves as well at this size.)
      if (search) {
        if (!/ u\.id > /.test(sql)) expect(found.trigram, `${operation}\n${sql}`).toBe(true);
      } else {
        expect(found.sorts, `${operation}\n${sql}`).toEqual([]);
        expect(found.filters, `${operation}\n${sql}`).toEqual([]);
      }
      // A count (or sum) of payments reads counters, never the payments; of users too, unless it searches.
      if (counting && !search) expect([...found.tablesRead].filter((n) => GROWING.has(n)), `${operation}\n${sql}`).toEqual([]);
    }
    if (expectCount) expect(statements.some((q) => /payment_counters|payment_totals|user_totals|count\(/.test(q)), operation).toBe(true);
    return r.body.data!;
  }

  it('payments(...): newest first, every filter, first page and the next, and their totalCount', async () => {
    const variants = combinations(filterArgs(query.payments!));
    expect(variants.length).toBeGreaterThanOrEqual(16);
    for (const args of variants) {
      const a = argsText(args);
      const page = await check(`{ payments(first: 5${a ? `, ${a}` : ''}) { totalCount pageInfo { endCursor } nodes { id user { email } } } }`, admin, true);
      const after = page.payments.pageInfo.endCursor;
      if (after) await check(`{ payments(first: 5, after: "${after}"${a ? `, ${a}` : ''}) { nodes { id } } }`, admin);
    }
  });

  it("paymentHistory(...) and User.payments(...): one user's payments, every filter, both pages, with their counts and stats", async () => {
    for (const args of combinations(filterArgs(query.paymentHistory!))) {
      const a = argsText(args);
      const page = await check(`{ paymentHistory(first: 3${a ? `, ${a}` : ''}) { totalCount pageInfo { endCursor } nodes { id } } }`, user5, true);
      const after = page.paymentHistory.pageInfo.endCursor;
      if (after) await check(`{ paymentHistory(first: 3, after: "${after}"${a ? `, ${a}` : ''}) { nodes { id } } }`, user5);
    }
    for (const args of combinations(filterArgs(userFields.payments!))) {
      const a = argsText(args);
      // One user's page, and a batch of pages (one statement for all users: a LATERAL per user).
      const one = await check(`{ user(id: "5") { paymentCount${a ? `(${a})` : ''} paymentStats { count } payments(first: 3${a ? `, ${a}` : ''}) { totalCount pageInfo { endCursor } nodes { id } } } }`, admin, true);
      const after = one.user.payments.pageInfo.endCursor;
      if (after) await check(`{ user(id: "5") { payments(first: 3, after: "${after}"${a ? `, ${a}` : ''}) { nodes { id } } } }`, admin);
      await check(`{ users(first: 10) { nodes { paymentCount${a ? `(${a})` : ''} payments(first: 3${a ? `, ${a}` : ''}) { totalCount nodes { id } } } } }`, admin);
    }
  });

  it('users(filter: ...): by id, every combination of every filter field, both pages, and their totalCount', async () => {
    const variants = combinations(Object.values(userFilter));
    expect(variants.length).toBeGreaterThanOrEqual(3 * 3 * 2 * 3);
    for (const filter of variants) {
      const f = Object.keys(filter).length ? `, filter: { ${argsText(filter)} }` : '';
      const page = await check(`{ users(first: 3${f}) { totalCount pageInfo { endCursor } nodes { id } } }`, admin, true);
      const after = page.users.pageInfo.endCursor;
      if (after) await check(`{ users(first: 3, after: "${after}"${f}) { nodes { id } } }`, admin);
    }
  });

  it('the checks can fail: a sort no index serves, a count that reads the rows, a search without the trigram index', async () => {
    const sorted = inspect(await planOf('select id from users order by name limit 3', ORDERED));
    expect(sorted.sorts).toEqual(['users']);
    // Walking the primary key in order and dropping the rows of other roles is ordered, but reads them all.
    const walked = inspect(await planOf("select id from users where role = 'ADMIN' order by id limit 3", ORDERED, usersIndexes));
    expect(walked.sorts).toEqual([]);
    expect(walked.filters).toEqual(["users: (role = 'ADMIN'::text)"]);
    const counted = inspect(await planOf('select count(*) from payments where user_id = 5', ORDERED));
    expect([...counted.tablesRead]).toEqual(['payments']);
    const search = inspect(
      await planOf("select id from users u where u.deleted_at is null and u.email like '%er1%' order by u.id limit 4", { enable_seqscan: 'off', enable_indexscan: 'off', enable_indexonlyscan: 'off' }, usersIndexes),
    );
    expect(search.trigram).toBe(false);
  });
});
