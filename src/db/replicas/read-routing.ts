import type { MikroORM, SqlEntityManager } from '@mikro-orm/postgresql';
import type { AbstractSqlConnection } from '@mikro-orm/knex';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { FastifyBaseLogger } from 'fastify';
import { attributedFork, taggedReadFork } from '../../core/sql-stats.js';
import { bindReadTarget, type ReadTarget } from '../../core/sql.js';
import { writeOwners, type CacheService } from '../../core/cache/index.js';

/** `16/B374D848` -> a number (exact up to 2^53 bytes of WAL, some 9 PB). */
export function lsnToNumber(lsn: string | null | undefined): number {
  if (!lsn) return 0;
  const [high, low] = lsn.split('/');
  return parseInt(high!, 16) * 2 ** 32 + parseInt(low!, 16);
}

/**
 * The primary's current WAL position as a number (after a write: the position every replica must
 * have replayed to show it). `loggerContext` attributes its statement to a request.
 */
export async function primaryWalPosition(orm: MikroORM, loggerContext?: Record<string, unknown>): Promise<number> {
  const context = loggerContext ?? attributedFork(orm.em, 'write-position').getLoggerContext();
  const [row] = await orm.em.getConnection('write').execute<{ lsn: string }[]>('select pg_current_wal_lsn()::text as lsn', [], 'all', undefined, context);
  return lsnToNumber(row?.lsn);
}

export interface ReplicaStatus {
  name: string;
  /** In the rotation: answered its last check, is a standby, and lags at most the limit. */
  healthy: boolean;
  /** Replay lag at the last check (0 when it had replayed all the primary had written); null if unknown. */
  lagMs: number | null;
  /** The WAL position it had replayed at the last check (reads needing more go to the primary). */
  replayed: number;
  /** Why it is out of the rotation, if it is. */
  problem: string | null;
}

interface Replica extends ReplicaStatus {
  connection: AbstractSqlConnection;
}

export interface ReadRoutingOptions {
  maxLagMs: number;
  checkMs: number;
  registry?: Registry;
  log: FastifyBaseLogger;
}

/** A mark (see `CacheService.raiseMark`) outlives the longest lag a replica may have and stay in rotation. */
const markTtlMs = (maxLagMs: number) => Math.max(60_000, maxLagMs * 4);

/**
 * How long after the marks were lost (their store evicted, flushed or restarted empty) an absent mark
 * is not trusted: a replica stays in the rotation only while the newest data it has replayed is at
 * most `maxLagMs` old (checked every `checkMs`), so past this every replica in it has replayed any
 * write whose mark was lost.
 */
const lossWindowMs = (options: { maxLagMs: number; checkMs: number }) => options.maxLagMs + 2 * options.checkMs;

/**
 * Read replicas (DATABASE_REPLICA_URLS), over MikroORM's own replica connections, with the choice of
 * replica made here rather than at random:
 *
 * - Health: every DATABASE_REPLICA_CHECK_MS each replica is asked whether it is a standby, how far it
 *   has replayed, and how long ago it last replayed; behind the primary by more than
 *   DATABASE_REPLICA_MAX_LAG_MS, down, or refusing connections, it leaves the rotation, and it comes
 *   back by itself at the first good check. A read that fails on a replica is answered by the primary
 *   (no failed request) and takes that replica out until its next good check.
 * - Read-your-writes: after each write commits, the primary's WAL position is read once; each tag
 *   version the write bumps carries it, and so does a per-viewer mark in the shared store (for the
 *   viewer who wrote, and for the owners the write's tags name: `user:<id>`, `payments:user:<id>`).
 *   A read goes to a replica only if that replica had replayed past both the viewer's mark and the
 *   highest position of the versions it is loaded under; else to the primary. So no viewer sees a
 *   state from before their own write, on any instance, and no cache entry is ever filled from a
 *   replica that has not replayed the write that last invalidated its tags.
 * - Only the query cache's loads (and the lists and lookups behind them) are routed; mutations,
 *   transactions and any read after a write in the same request use the primary.
 */
export class ReadRouting {
  private readonly replicas: Replica[];
  private timer: NodeJS.Timeout | null = null;
  private next = 0;
  private fallbacks = 0;
  private checking: Promise<void> | null = null;

  constructor(
    private readonly orm: MikroORM,
    private readonly cache: CacheService,
    private readonly options: ReadRoutingOptions,
  ) {
    // MikroORM's replica connections, in DATABASE_REPLICA_URLS order (named replica1, replica2...).
    const connections = (orm.em.getDriver() as unknown as { replicas: AbstractSqlConnection[] }).replicas;
    this.replicas = connections.map((connection, i) => ({ name: `replica${i + 1}`, connection, healthy: false, lagMs: null, replayed: 0, problem: 'not checked yet' }));
    cache.onInvalidate(async (_tags, write) => {
      if (write.position <= 0) return;
      const owners = new Set<number>([...write.actors, ...writeOwners(write.change)]);
      await Promise.all([...owners].map((id) => cache.raiseMark(`lsn:user:${id}`, write.position, markTtlMs(options.maxLagMs))));
    });
    if (options.registry) this.registerMetrics(options.registry);
  }

  get configured(): boolean {
    return this.replicas.length > 0;
  }

  /** Checks every replica now, then every `checkMs`. */
  async start(): Promise<void> {
    await this.check();
    this.timer = setInterval(() => void this.check(), this.options.checkMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  status(): ReplicaStatus[] {
    return this.replicas.map(({ name, healthy, lagMs, replayed, problem }) => ({ name, healthy, lagMs, replayed, problem }));
  }

  /**
   * The primary's WAL position now (after a write's commit, or when a tag version is made anew), as a
   * number; its statement counts against the request whose logger context is given.
   */
  writePosition(loggerContext?: Record<string, unknown>): Promise<number> {
    return primaryWalPosition(this.orm, loggerContext);
  }

  /** The position of the viewer's latest write (0: none known); fails open to 0 with a counted error. */
  async viewerPosition(viewerId: number): Promise<number> {
    try {
      return await this.cache.readMark(`lsn:user:${viewerId}`, lossWindowMs(this.options));
    } catch (err) {
      this.cache.noteError(err);
      // Not knowing the viewer's last write, their reads must go to the primary.
      return Number.MAX_SAFE_INTEGER;
    }
  }

  /**
   * The router of one request: for a load that must see writes up to `position`, an EntityManager
   * (a fork of `em`, one per replica and kind) reading on a healthy replica that has replayed past
   * it and past the viewer's own last write, or null for the primary. The viewer's mark is read from
   * the shared store at the first load, once: a request answered without SQL never asks for it.
   */
  forRequest(em: SqlEntityManager, viewerId: number | null): (position: number, tagged: boolean) => Promise<SqlEntityManager | null> {
    const forks = new Map<string, SqlEntityManager>();
    let viewerPosition: Promise<number> | null = null;
    return async (position, tagged) => {
      viewerPosition ??= viewerId === null ? Promise.resolve(0) : this.viewerPosition(viewerId);
      const replica = this.pick(Math.max(position, await viewerPosition));
      if (!replica) return null;
      const key = `${replica.name}|${tagged}`;
      let fork = forks.get(key);
      if (!fork) {
        fork = tagged ? taggedReadFork(em) : (em.fork({ disableContextResolution: true, loggerContext: em.getLoggerContext() }) as SqlEntityManager);
        bindReadTarget(fork, this.targetOf(replica));
        forks.set(key, fork);
      }
      return fork;
    };
  }

  /** A healthy replica that had replayed `position`, in turn; null: the primary. */
  private pick(position: number): Replica | null {
    const n = this.replicas.length;
    for (let i = 0; i < n; i++) {
      const replica = this.replicas[(this.next + i) % n]!;
      if (replica.healthy && replica.replayed >= position) {
        this.next = (this.next + i + 1) % n;
        return replica;
      }
    }
    return null;
  }

  private targetOf(replica: Replica): ReadTarget {
    return {
      read: async <T>(sql: string, params: readonly unknown[], loggerContext: Record<string, unknown>): Promise<T[]> => {
        try {
          return await replica.connection.execute<T[]>(sql, params as unknown[], 'all', undefined, loggerContext);
        } catch (err) {
          // A statement that ran out of time is slow, not a replica that is down: it stays in the
          // rotation, and the primary is not asked to run it too (it would be as slow there, and
          // the request would wait twice). The request gets its SERVICE_UNAVAILABLE.
          if (isStatementTimeout(err)) throw err;
          // Whatever else went wrong there, the primary answers; a replica that could not answer at
          // all leaves the rotation until its next good check.
          this.fallbacks++;
          if (!isSqlError(err)) this.markDown(replica, (err as Error).message);
          return this.orm.em.getConnection('write').execute<T[]>(sql, params as unknown[], 'all', undefined, loggerContext);
        }
      },
    };
  }

  private markDown(replica: Replica, problem: string): void {
    if (replica.healthy) this.options.log.warn({ replica: replica.name, problem }, 'read replica left the rotation; reads go to the primary');
    replica.healthy = false;
    replica.problem = problem;
  }

  private check(): Promise<void> {
    // One check at a time: a slow replica must not pile up checks.
    this.checking ??= this.checkAll().finally(() => (this.checking = null));
    return this.checking;
  }

  private async checkAll(): Promise<void> {
    let primary: number;
    try {
      primary = await this.writePosition();
    } catch {
      return; // the primary is away: nothing to compare with; readiness says so
    }
    const em = attributedFork(this.orm.em, 'replica-check');
    await Promise.all(
      this.replicas.map(async (replica) => {
        try {
          const [row] = await replica.connection.execute<{ standby: boolean; lsn: string | null; sinceMs: number | null }[]>(
            `select pg_is_in_recovery() as standby, pg_last_wal_replay_lsn()::text as lsn,
                    (extract(epoch from now() - pg_last_xact_replay_timestamp()) * 1000)::float8 as "sinceMs"`,
            [],
            'all',
            undefined,
            em.getLoggerContext(),
          );
          if (!row?.standby) return this.markDown(replica, 'not a standby (promoted, or not a replica)');
          const replayed = lsnToNumber(row.lsn);
          replica.replayed = Math.max(replica.replayed, replayed);
          // Caught up with what the primary had written when asked: no lag. Behind: as long as it has
          // not replayed anything new (the time since its last replayed transaction).
          replica.lagMs = replayed >= primary ? 0 : Math.max(0, Math.round(row.sinceMs ?? Number.MAX_SAFE_INTEGER));
          if (replica.lagMs > this.options.maxLagMs) return this.markDown(replica, `replay lag ${replica.lagMs} ms over ${this.options.maxLagMs} ms`);
          if (!replica.healthy) this.options.log.info({ replica: replica.name, lagMs: replica.lagMs }, 'read replica back in the rotation');
          replica.healthy = true;
          replica.problem = null;
        } catch (err) {
          replica.lagMs = null;
          this.markDown(replica, (err as Error).message.split('\n')[0] ?? 'unreachable');
        }
      }),
    );
  }

  private registerMetrics(registry: Registry): void {
    const replicas = () => this.replicas;
    const fallbacks = () => this.fallbacks;
    new Gauge({
      name: 'db_replica_lag_ms',
      help: 'Replay lag of each read replica at its last check (-1: unknown)',
      labelNames: ['replica'] as const,
      registers: [registry],
      collect() {
        for (const r of replicas()) this.set({ replica: r.name }, r.lagMs ?? -1);
      },
    });
    new Gauge({
      name: 'db_replica_healthy',
      help: 'Whether each read replica is in the rotation',
      labelNames: ['replica'] as const,
      registers: [registry],
      collect() {
        for (const r of replicas()) this.set({ replica: r.name }, r.healthy ? 1 : 0);
      },
    });
    new Counter({
      name: 'db_replica_fallbacks_total',
      help: 'Reads that failed on a replica and were answered by the primary',
      registers: [registry],
      collect() {
        this.reset();
        this.inc(fallbacks());
      },
    });
  }
}

/** 57014 query_canceled: the statement ran past statement_timeout (or was cancelled). */
function isStatementTimeout(err: unknown): boolean {
  return (err as { code?: unknown })?.code === '57014';
}

/** An error PostgreSQL answered for the statement itself (it has a SQLSTATE), not a lost connection. */
function isSqlError(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code;
  // Class 08 (connection exception) and 57 (operator intervention: shutdown, cannot connect now) are outages.
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) && !/^(08|57)/.test(code);
}
