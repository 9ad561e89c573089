import type Keyv from 'keyv';
import { annotateActiveSpan, traced, tracingOn } from '../tracing.js';
import { UNKNOWN_POSITION } from './marks.js';
import { TagVersions, TAG_PREFIX } from './versions.js';
import { SingleFlight } from './single-flight.js';
import { PendingWrites } from './pending-writes.js';
import { memoryStore, redisStore, type StoreParts } from './stores.js';
import { keyValueView } from './key-value.js';
import { writeTags, type WriteChange } from './tags.js';

import { CacheTimeoutError, emptyStats, type CacheServiceOptions, type Entry, type LayerStats, type LoadRequest, type WriteInfo } from './cache.types.js';

export { UNKNOWN_POSITION } from './marks.js';
export { versionPosition } from './versions.js';
export { asError, emptyStats, type CacheServiceOptions, type LayerStats, type LoadRequest, type WriteInfo } from './cache.types.js';

const ERROR_LOG_INTERVAL_MS = 10_000;
/** Bound on `clear()`, a whole-namespace SCAN and delete, not a read on a request's path. */
const CLEAR_TIMEOUT_MS = 30_000;

/**
 * The shared query cache of one app instance, over Keyv (memory, or Redis for many instances).
 *
 * Invalidation uses tag versions kept in the same store: each entry records the version of each of
 * its tags when it was computed, and a write gives each tag it touches a new random version. A read
 * fetches the entries and their tags' current versions in one `getMany` (one MGET on Redis) and treats
 * any difference as a miss, so an invalidation made by one instance is seen by every instance sharing
 * the store at once. Versions are read before the load, so a write that commits during a load can
 * never leave its old result looking current.
 *
 * It fails open: a store error or timeout counts an error, the read goes to the database, and the
 * request carries on. Invalidations that could not be written are retried on the next successful
 * operation, and until then this instance does not serve entries carrying those tags.
 */
export class CacheService {
  /** Counters since start, over every request (for metrics). */
  readonly totals: LayerStats = emptyStats();
  /** The build whose entries this instance reads and writes (tags and marks are every build's). */
  readonly build: string;
  readonly keyv: Keyv;
  private readonly entryPrefix: string;
  private readonly flights = new SingleFlight();
  private readonly versions: TagVersions;
  private readonly pending: PendingWrites;
  private readonly invalidationListeners: ((tags: readonly string[], write: WriteInfo) => Promise<void> | void)[] = [];
  private lastErrorLog = 0;
  private suppressedErrors = 0;

  private constructor(
    private readonly parts: StoreParts,
    private readonly options: CacheServiceOptions,
  ) {
    this.keyv = parts.keyv;
    this.build = options.build ?? 'main';
    this.entryPrefix = `q:${this.build}:`;
    this.keyv.on('error', () => {
      // Errors are also thrown (throwOnErrors) and counted where they happen.
    });
    const guard = <T>(operation: Promise<T>) => this.guard(operation);
    this.versions = new TagVersions(parts.createTagVersions, guard, (loggerContext) => this.positionNow(loggerContext));
    this.pending = new PendingWrites({
      writeVersions: (entries) => guard(this.keyv.setMany(entries)),
      raiseMark: (key, value, ttlMs) => guard(parts.marks.raise(key, value, ttlMs)),
      onError: (err) => {
        this.totals.errors++;
        this.noteError(err);
      },
    });
  }

  static create(options: CacheServiceOptions): CacheService {
    if (!options.redisUrl) return new CacheService(memoryStore({ namespace: options.namespace, maxEntries: options.maxMemoryEntries ?? 50_000 }), options);
    // The store's events come after this returns, when the service exists.
    const made: { service?: CacheService } = {};
    const parts = redisStore(
      { url: options.redisUrl, namespace: options.namespace, timeoutMs: options.timeoutMs },
      { onError: (err) => made.service?.noteError(err), onReady: () => void made.service?.pending.flush() },
    );
    made.service = new CacheService(parts, options);
    return made.service;
  }

  /**
   * Waits, at most `timeoutMs`, for the store to be connected. Start-up calls it so the first requests
   * find Redis ready; if it is down, the app starts anyway and reads go to PostgreSQL until it returns.
   */
  async ready(timeoutMs = 2000): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
    const connected = this.parts.connected.then(() => true);
    try {
      return await Promise.race([connected, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** For readiness: 'ok', or why the store does not answer; null when there is no remote store. */
  async ping(): Promise<'ok' | string | null> {
    if (!this.parts.ping) return null;
    try {
      await this.guard(this.parts.ping());
      return 'ok';
    } catch (err) {
      return (err as Error).message || 'unreachable';
    }
  }

  get defaultTtlMs(): number {
    return this.options.defaultTtlSeconds * 1000;
  }

  /**
   * Values for `requests`, from the store where current, else from `loadMissing` (called once with
   * the indexes of every miss). Concurrent misses of the same key and versions in this process share
   * one load (single flight). Null and undefined results are returned but not stored.
   *
   * A load that fails fails only its own keys: their places hold the `Error` (DataLoader's contract for
   * a batch: the error for that key only), whether the load was this call's own or one it joined. The
   * promise this returns never rejects for a load, and no promise made here is left without a handler.
   */
  async getOrLoadMany<T>(
    requests: readonly LoadRequest[],
    ttlMs: number,
    loadMissing: (missing: number[]) => Promise<T[]>,
    stats: LayerStats,
    onVersions?: (versions: Readonly<Record<string, string>> | null) => void,
    /** The asking request's logger context: a statement this lookup needs is counted against it. */
    loggerContext?: Record<string, unknown>,
  ): Promise<(T | Error)[]> {
    if (requests.length === 0) return [];
    // An invalidation that could not be written earlier goes first, now that the store may be back.
    if (!this.pending.empty) await this.pending.flush();
    const tags = [...new Set(requests.flatMap((r) => (r.watch ? [...r.tags, ...r.watch] : r.tags)))];
    let raw: unknown[] | null;
    const keys = [...requests.map((r) => this.entryPrefix + r.key), ...tags.map((t) => TAG_PREFIX + t)];
    try {
      raw = tracingOn
        ? await traced('cache.lookup', { 'paygraph.cache.store': this.isShared ? 'redis' : 'memory', 'paygraph.cache.keys': keys.length }, () => this.guard(this.keyv.getMany(keys)))
        : await this.guard(this.keyv.getMany(keys));
    } catch (err) {
      this.countError(stats, err);
      raw = null;
    }

    const results: (T | Error)[] = new Array(requests.length);
    const missing: number[] = [];
    let versions: Record<string, string> | null = null;
    if (raw) {
      try {
        versions = await this.versions.current(tags, raw.slice(requests.length), loggerContext);
      } catch (err) {
        // Without a version known to be the store's, nothing may be stored: the load goes to SQL only.
        this.countError(stats, err);
      }
    }
    // A tag this instance could not yet bump is not current at any version the store holds.
    onVersions?.(versions && !tags.some((t) => this.pending.invalidations.has(t)) ? versions : null);
    requests.forEach((request, i) => {
      const entry = raw?.[i] as Entry | undefined;
      if (entry && versions && this.isCurrent(entry, request.tags, versions)) {
        results[i] = entry.v as T;
        stats.hits++;
        this.totals.hits++;
      } else {
        missing.push(i);
        stats.misses++;
        this.totals.misses++;
      }
    });
    // On the span of whatever asked (a loader's batch): how much of it the cache answered.
    annotateActiveSpan({ 'paygraph.cache.hits': requests.length - missing.length, 'paygraph.cache.misses': missing.length });
    if (missing.length === 0) return results;

    // Stored before the flights resolve: a request that comes after them finds the entry. `store`
    // counts its own failures, so a load rejects only when the load itself failed.
    await this.flights.load(
      missing,
      results,
      versions ? (i) => this.flightKey(requests[i]!, versions) : null,
      (toLoad) =>
        loadMissing(toLoad).then(async (values) => {
          if (versions) await this.store(requests, toLoad, values, versions, ttlMs, stats);
          return values;
        }),
    );
    return results;
  }

  /**
   * Gives each tag a new version: every entry carrying one of them is a miss from now on, everywhere.
   *
   * If the store cannot be written (Redis down or partitioned from this instance), the write that
   * called this has still committed. Then: this instance serves no entry carrying those tags until the
   * new versions are written; the write is retried on every cache call, on reconnect and on a timer
   * (every 0.1 s at first, then at most every 2 s) until it lands, and once more on close. Other
   * instances can serve an entry from before the write until then, and never past its TTL.
   */
  async invalidate(tags: readonly string[], options: { actors?: readonly number[]; change?: WriteChange } = {}): Promise<void> {
    if (tags.length === 0) return;
    // With read replicas: the primary's WAL position now, after the write's commit. Each new version
    // carries it, so a load under these tags is never filled from a replica that has not replayed it.
    let position = 0;
    if (this.options.writePosition) {
      try {
        position = await this.options.writePosition();
      } catch (err) {
        this.noteError(err);
        // Not knowing where the write is, no replica may count as having replayed it.
        position = UNKNOWN_POSITION;
      }
    }
    this.pending.addInvalidations(tags, position);
    await this.pending.flush();
    // Writes call this after they commit: what they changed is final, whatever the store said.
    const write: WriteInfo = { change: options.change ?? {}, position, actors: options.actors ?? [] };
    for (const listener of this.invalidationListeners) {
      try {
        await listener(tags, write);
      } catch (err) {
        this.noteError(err);
      }
    }
  }

  /** Records a committed write: bumps the tags of what it changed (`writeTags`) and tells the listeners what that was. */
  write(change: WriteChange, options: { actors?: readonly number[] } = {}): Promise<void> {
    return this.invalidate(writeTags(change), { ...options, change });
  }

  /**
   * Calls `listener` with the tags of every invalidation made through this instance, after the store
   * was told (or failed to be): the point at which a write is committed and known by its tags.
   */
  onInvalidate(listener: (tags: readonly string[], write: WriteInfo) => Promise<void> | void): void {
    this.invalidationListeners.push(listener);
  }

  /**
   * The store's current version of each tag, in order: undefined where it holds none, or where this
   * instance has an invalidation of it not yet written (no entry carrying it is current here). Throws
   * when the store does not answer (callers fail open).
   */
  async tagVersions(tags: readonly string[]): Promise<(string | undefined)[]> {
    if (tags.length === 0) return [];
    if (this.pending.invalidations.size > 0) await this.pending.flush();
    const stored = await this.guard(this.keyv.getMany(tags.map((t) => TAG_PREFIX + t)));
    return tags.map((tag, i) => (typeof stored[i] === 'string' && !this.pending.invalidations.has(tag) ? (stored[i] as string) : undefined));
  }

  /**
   * Raises the number named `key` to `value` if it is lower, for `ttlMs` (read-your-writes: the WAL
   * position of a viewer's latest write). Concurrent raises keep the highest. Fails open (counted).
   */
  async raiseMark(key: string, value: number, ttlMs: number): Promise<void> {
    try {
      await this.guard(this.parts.marks.raise(key, value, ttlMs));
    } catch (err) {
      this.totals.errors++;
      this.noteError(err);
      // Retried with the invalidations; until it lands this instance reads that mark as unknown.
      this.pending.addMark(key, value, ttlMs);
    }
  }

  /**
   * The number named `key`: 0 when none is held, UNKNOWN_POSITION when one may have been lost (the
   * store's marks are younger than `lossWindowMs`: evicted, flushed or restarted empty that recently;
   * or this instance could not write it yet). Throws when the store does not answer.
   */
  async readMark(key: string, lossWindowMs: number): Promise<number> {
    if (this.pending.marks.has(key)) return UNKNOWN_POSITION;
    return this.guard(this.parts.marks.read(key, lossWindowMs));
  }

  /** True with a remote store (Redis): entries are shared by every instance. */
  get isShared(): boolean {
    return this.parts.ping !== null;
  }

  /** Invalidations written by nobody yet (tests and metrics). */
  get pendingInvalidationCount(): number {
    return this.pending.invalidations.size;
  }

  /** A plain key-value view of the store under `prefix` (see `keyValueView`). */
  keyValueStore(prefix: string) {
    return keyValueView(this.keyv, prefix, (operation) => this.guard(operation), (err) => {
      this.totals.errors++;
      this.noteError(err);
    });
  }

  /**
   * Drops everything in this namespace (the original design note's `clear_cache`). Not a request's
   * read: on Redis it SCANs the whole keyspace for the namespace, so it gets a bound of its own rather
   * than the per-read timeout (which a busy Redis with many keys can pass without anything being wrong).
   */
  async clear(): Promise<void> {
    await this.guard(this.keyv.clear(), CLEAR_TIMEOUT_MS);
  }

  async close(): Promise<void> {
    this.pending.stop();
    // A last chance for invalidations still unwritten (bounded by the timeout like every call).
    await this.pending.flush(false);
    await this.parts.close();
  }

  /** The primary's WAL position now (with replicas; else 0), UNKNOWN_POSITION when it cannot be read. */
  private async positionNow(loggerContext?: Record<string, unknown>): Promise<number> {
    if (!this.options.writePosition) return 0;
    try {
      return await this.options.writePosition(loggerContext);
    } catch (err) {
      this.noteError(err);
      return UNKNOWN_POSITION;
    }
  }

  private isCurrent(entry: Entry, tags: readonly string[], versions: Record<string, string>): boolean {
    for (const tag of tags) {
      if (this.pending.invalidations.has(tag) || entry.t?.[tag] !== versions[tag]) return false;
    }
    return true;
  }

  private flightKey(request: LoadRequest, versions: Record<string, string>): string {
    return `${request.key}|${request.tags.map((t) => versions[t]).join('.')}`;
  }

  private async store(
    requests: readonly LoadRequest[],
    indexes: number[],
    values: unknown[],
    versions: Record<string, string>,
    ttlMs: number,
    stats: LayerStats,
  ): Promise<void> {
    const entries = indexes.flatMap((i, n) => {
      const value = values[n];
      if (value === null || value === undefined) return [];
      const t = Object.fromEntries(requests[i]!.tags.map((tag) => [tag, versions[tag]!]));
      return [{ key: this.entryPrefix + requests[i]!.key, value: { v: value, t } satisfies Entry, ttl: ttlMs }];
    });
    if (entries.length === 0) return;
    try {
      await this.guard(this.keyv.setMany(entries));
      stats.sets += entries.length;
      this.totals.sets += entries.length;
    } catch (err) {
      this.countError(stats, err);
    }
  }

  private countError(stats: LayerStats, err: unknown): void {
    stats.errors++;
    this.totals.errors++;
    this.noteError(err);
  }

  /** Logs the first error of a burst, then at most one line per interval with the count suppressed. */
  noteError(err: unknown): void {
    const now = Date.now();
    if (now - this.lastErrorLog < ERROR_LOG_INTERVAL_MS) {
      this.suppressedErrors++;
      return;
    }
    const suppressed = this.suppressedErrors;
    this.lastErrorLog = now;
    this.suppressedErrors = 0;
    this.options.onError?.(
      `query cache store error; reads fall back to PostgreSQL${suppressed ? ` (${suppressed} more since the last report)` : ''}`,
      err,
    );
  }

  private guard<T>(operation: Promise<T>, timeoutMs = this.options.timeoutMs): Promise<T> {
    // The memory store answers within the call: no timer, no race (two promises and a timer a call).
    if (!this.parts.ping) return operation;
    let timer: NodeJS.Timeout;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new CacheTimeoutError(`cache store did not answer within ${timeoutMs} ms`)), timeoutMs);
    });
    return Promise.race([operation, timeout]).finally(() => clearTimeout(timer));
  }
}
