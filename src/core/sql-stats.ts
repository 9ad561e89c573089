import { DefaultLogger, type EntityManager, type LogContext, type LoggerOptions } from '@mikro-orm/core';
import type { ResponsePath } from 'graphql';

/** `users.nodes.*.payments`: list indexes folded, so one path names a whole N+1. */
export function foldPath(path: ResponsePath | undefined): string | null {
  if (!path) return null;
  const parts: string[] = [];
  for (let p: ResponsePath | undefined = path; p; p = p.prev) parts.push(typeof p.key === 'number' ? '*' : p.key);
  return parts.reverse().join('.');
}

/** One statement as the ORM sent it, attributed to the request that sent it. */
export interface StatementRecord {
  sql: string;
  durationMs: number;
  /** Which server ran it: `primary`, or a replica's name (`replica1`...). */
  target: string;
}

/** A statement shape that ran more often in one request than the N+1 threshold allows. */
export interface RepeatedStatement {
  shape: string;
  count: number;
  /** The GraphQL field that sent it first, list indexes folded (`users.nodes.*.naivePayments`). */
  path: string | null;
}

/**
 * SQL with its literals and parameter lists folded, so the same query for different ids has one
 * shape: `select ... where id = ?` whatever the id.
 */
const shapeMemo = new Map<string, string>();

export function sqlShape(sql: string): string {
  // Statement texts repeat (parameters travel apart from the text when query logging is off).
  const known = shapeMemo.get(sql);
  if (known !== undefined) return known;
  const shape = foldSql(sql);
  if (shapeMemo.size >= 1000) shapeMemo.clear();
  shapeMemo.set(sql, shape);
  return shape;
}

function foldSql(sql: string): string {
  return sql
    .replace(/'(?:[^']|'')*'/g, '?')
    .replace(/\b\d+(?:\.\d+)?\b/g, '?')
    .replace(/\(\s*\?(?:\s*,\s*\?)*\s*\)/g, '(?)')
    .replace(/\s+/g, ' ')
    .trim();
}

/**
 * The SQL a single request sent. It travels in the forked EntityManager's logger context, so every
 * statement that fork runs (entity finds, query builders, `em.execute`, flushes) is attributed here.
 * With an N+1 threshold it also counts statement shapes, and notes each shape that passes it.
 */
export class SqlStats {
  statements = 0;
  /**
   * Statements sent outside a tagged read of the query cache (see `taggedReadFork`): a response that
   * read anything this way depends on data no invalidation tag names, so it is never cached whole.
   */
  untagged = 0;
  durationMs = 0;
  /** Kept only when asked for (debug responses, tests): texts cost memory on the hot path. */
  readonly texts: StatementRecord[] | null;
  /** Shapes that passed the threshold, in the order they did. */
  readonly repeated: RepeatedStatement[] = [];
  private readonly threshold: number;
  private readonly shapes: Map<string, { count: number; path: string | null }> | null;
  private lastPath: ResponsePath | undefined;

  /** `nPlusOneThreshold` 0 (the default) counts no shapes. */
  constructor(options: { keepTexts?: boolean; nPlusOneThreshold?: number } = {}) {
    this.texts = options.keepTexts ? [] : null;
    this.threshold = options.nPlusOneThreshold ?? 0;
    this.shapes = this.threshold > 0 ? new Map() : null;
  }

  /** The GraphQL field now resolving (see `TrackResolverPath`): named by N+1 and slow-statement reports. */
  notePath(path: ResponsePath): void {
    this.lastPath = path;
  }

  /** The GraphQL path that sent the latest statement, list indexes folded. */
  get currentPath(): string | null {
    return foldPath(this.lastPath);
  }

  /** Statements that ran on a replica. */
  onReplicas = 0;

  record(sql: string, durationMs: number, tagged = false, target = 'primary'): void {
    this.statements++;
    if (!tagged) this.untagged++;
    if (target !== 'primary') this.onReplicas++;
    this.durationMs += durationMs;
    this.texts?.push({ sql, durationMs, target });
    if (!this.shapes) return;
    const shape = sqlShape(sql);
    const seen = this.shapes.get(shape);
    if (!seen) {
      this.shapes.set(shape, { count: 1, path: foldPath(this.lastPath) });
      return;
    }
    seen.count++;
    if (seen.count === this.threshold + 1) this.repeated.push({ shape, count: seen.count, path: seen.path });
    else if (seen.count > this.threshold + 1) this.repeated.find((r) => r.shape === shape)!.count = seen.count;
  }
}

/** Logger context key under which a fork carries its request's `SqlStats`. */
export const SQL_STATS_KEY = 'sqlStats';

/**
 * A fork of `em` whose statements are attributed to `requestId` (a request, a webhook, a reconciliation
 * run, an event): counted, logged as slow with that id, and never "unattributed" beside a request.
 */
export function attributedFork<E extends EntityManager>(em: E, requestId: string, stats: SqlStats = new SqlStats()): E {
  return em.fork({ disableContextResolution: true, loggerContext: { [SQL_STATS_KEY]: stats, requestId } }) as E;
}

/** Logger context key marking statements sent by a tagged read of the query cache. */
export const TAGGED_READ_KEY = 'taggedRead';

/**
 * A fork of a request's `em` for the loads of the query cache alone: its statements count against the
 * same request, marked as tagged reads (their results are known by the tags the load declared). Only
 * `QueryCache` hands it out, to the load it runs, so no other read can borrow the mark.
 */
export function taggedReadFork<E extends EntityManager>(em: E): E {
  return em.fork({ disableContextResolution: true, loggerContext: { ...em.getLoggerContext(), [TAGGED_READ_KEY]: true } }) as E;
}

/** One statement as the monitoring sees it. */
export interface StatementEvent {
  sql: string;
  durationMs: number;
  /** The request (or event) that sent it; null outside any. */
  requestId: string | null;
  /** The GraphQL field that sent it, when a request's resolver did. */
  path: string | null;
}

/**
 * Process-wide counts: what was attributed to a request and what ran outside any request; and, once
 * the app sets it, the observer every statement is shown to (slow-statement log and histogram).
 */
export class StatementTotals {
  attributed = 0;
  unattributed = 0;
  /** Statements by the server that ran them: `primary` and each replica's name. */
  readonly byTarget = new Map<string, number>();
  observe: ((event: StatementEvent) => void) | null = null;
}

/**
 * MikroORM logger that counts every statement. It keeps the default logger's output (governed by
 * `debug`) and adds the per-request attribution, which works whether or not query logging is on.
 */
export class StatsLogger extends DefaultLogger {
  constructor(
    options: LoggerOptions,
    private readonly totals: StatementTotals,
  ) {
    super(options);
  }

  override logQuery(context: { query: string } & LogContext): void {
    const stats = (context as Record<string, unknown>)[SQL_STATS_KEY];
    // MikroORM names the connection: its replicas are 'read' connections named replica1, replica2...
    const target = context.connection?.type === 'read' ? (context.connection.name ?? 'replica') : 'primary';
    this.totals.byTarget.set(target, (this.totals.byTarget.get(target) ?? 0) + 1);
    if (stats instanceof SqlStats) {
      this.totals.attributed++;
      stats.record(context.query, context.took ?? 0, (context as Record<string, unknown>)[TAGGED_READ_KEY] === true, target);
    } else {
      this.totals.unattributed++;
    }
    this.totals.observe?.({
      sql: context.query,
      durationMs: context.took ?? 0,
      requestId: typeof (context as Record<string, unknown>).requestId === 'string' ? ((context as Record<string, unknown>).requestId as string) : null,
      path: stats instanceof SqlStats ? stats.currentPath : null,
    });
    super.logQuery(context);
  }
}
