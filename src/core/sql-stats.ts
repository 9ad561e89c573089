import { DefaultLogger, type LogContext, type LoggerOptions } from '@mikro-orm/core';

/** One statement as the ORM sent it, attributed to the request that sent it. */
export interface StatementRecord {
  sql: string;
  durationMs: number;
}

/**
 * The SQL a single request sent. It travels in the forked EntityManager's logger context, so every
 * statement that fork runs (entity finds, query builders, `em.execute`, flushes) is attributed here.
 */
export class SqlStats {
  statements = 0;
  durationMs = 0;
  /** Kept only when asked for (debug responses, tests): texts cost memory on the hot path. */
  readonly texts: StatementRecord[] | null;

  constructor(options: { keepTexts?: boolean } = {}) {
    this.texts = options.keepTexts ? [] : null;
  }

  record(sql: string, durationMs: number): void {
    this.statements++;
    this.durationMs += durationMs;
    this.texts?.push({ sql, durationMs });
  }
}

/** Logger context key under which a fork carries its request's `SqlStats`. */
export const SQL_STATS_KEY = 'sqlStats';

/** Process-wide counts: what was attributed to a request and what ran outside any request. */
export class StatementTotals {
  attributed = 0;
  unattributed = 0;
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
    if (stats instanceof SqlStats) {
      this.totals.attributed++;
      stats.record(context.query, context.took ?? 0);
    } else {
      this.totals.unattributed++;
    }
    super.logQuery(context);
  }
}
