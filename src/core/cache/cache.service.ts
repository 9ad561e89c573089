import { randomBytes } from 'node:crypto';
import Keyv from 'keyv';
import KeyvRedis, { createClient } from '@keyv/redis';
import { deserialize, serialize } from './serialize.js';
import { annotateActiveSpan, traced, tracingOn } from '../tracing.js';

/** Counters of one layer, or of one request. */
export interface LayerStats {
  hits: number;
  misses: number;
  sets: number;
  errors: number;
}

export const emptyStats = (): LayerStats => ({ hits: 0, misses: 0, sets: 0, errors: 0 });

export interface CacheServiceOptions {
  /** Unset: an in-process memory store (one instance only). */
  redisUrl?: string;
  /** Prefix of every key in the store; instances that share data share a namespace. */
  namespace: string;
  /**
   * The build that fills entries (see core/build-id.ts): entries (and whole responses) of another build
   * are never read, while tag versions and marks are shared by every build. Default: one build.
   */
  build?: string;
  defaultTtlSeconds: number;
  /** Bound on every store operation; past it the cache counts an error and the read goes to SQL. */
  timeoutMs: number;
  /** Memory store only: entries kept at most (oldest dropped first). */
  maxMemoryEntries?: number;
  /** Told about store errors, at most once per burst. */
  onError?: (message: string, error: unknown) => void;
  /**
   * With read replicas: the primary's current WAL position as a number, read after each write (and
   * when a tag version has to be made anew). `loggerContext` attributes its statement to a request.
   */
  writePosition?: (loggerContext?: Record<string, unknown>) => Promise<number>;
}

/** One cached value and the versions its tags had when it was computed. */
interface Entry {
  v: unknown;
  t: Record<string, string>;
}

export interface LoadRequest {
  /** Full key: name plus `cacheKey(args)`. */
  key: string;
  /** Invalidation tags, known from the arguments (so versions are read before the load). */
  tags: readonly string[];
  /** Tags whose versions are read and reported with the entry's, without being stored on it. */
  watch?: readonly string[];
}

const TAG_PREFIX = 'tag:';
/** Tag versions outlive entries; an expired or evicted tag only causes misses (see `currentTagVersions`). */
const TAG_TTL_MS = 24 * 60 * 60 * 1000;
const ERROR_LOG_INTERVAL_MS = 10_000;
/** Bound on `clear()`, a whole-namespace SCAN and delete, not a read on a request's path. */
const CLEAR_TIMEOUT_MS = 30_000;
/** Retry delays of invalidations that could not be written: from the first to the longest. */
const REPLAY_FIRST_MS = 100;
const REPLAY_MAX_MS = 2000;

/**
 * A write position nobody could read (the primary did not answer after a write): every replica counts
 * as behind it, so reads that depend on it go to the primary. Never 0, which would let any replica fill.
 */
export const UNKNOWN_POSITION = Number.MAX_SAFE_INTEGER;

/** The field of the marks hash that says since when (server time, ms) the hash has existed. */
const MARKS_EPOCH = '~epoch';

/**
 * Marks live in one hash (no TTL: under `volatile-*` eviction it is never evicted) with the time it was
 * made in a field of its own, and a sorted set of when each was last raised (old ones are trimmed on
 * every raise). A mark that is absent while the hash is young may have been lost with an earlier hash
 * (evicted, flushed, a Redis restarted empty): it reads as unknown (see `markValue`).
 */
const RAISE_MARK = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSETNX', KEYS[1], '${MARKS_EPOCH}', now)
local current = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if tonumber(ARGV[2]) > current then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
redis.call('ZADD', KEYS[2], now, ARGV[1])
local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[3]), 'LIMIT', 0, 100)
for _, field in ipairs(old) do
  redis.call('HDEL', KEYS[1], field)
  redis.call('ZREM', KEYS[2], field)
end
return 1`;

/** The mark, and whether an absent one can be trusted as "no write": [mark or false, epoch, now]. */
const READ_MARK = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSETNX', KEYS[1], '${MARKS_EPOCH}', now)
local v = redis.call('HMGET', KEYS[1], ARGV[1], '${MARKS_EPOCH}')
return {v[1] or false, tonumber(v[2]), now}`;

/**
 * A mark read: its value; for an absent one 0, or UNKNOWN_POSITION while the marks are younger than
 * `lossWindowMs` (one lost with an earlier store may still matter then). A present mark is always
 * right: positions only grow, so a viewer's latest write is at or past every earlier one.
 */
function markValue(mark: number | null, epochMs: number, nowMs: number, lossWindowMs: number): number {
  if (mark !== null) return mark;
  return nowMs - epochMs < lossWindowMs ? UNKNOWN_POSITION : 0;
}

interface MarkStore {
  raise(key: string, value: number, ttlMs: number): Promise<void>;
  /** The mark; UNKNOWN_POSITION when it may have been lost (see `markValue`). */
  read(key: string, lossWindowMs: number): Promise<number>;
}

/** One process's marks: lost only with the process, so they are "young" for a lifetime after its start. */
function memoryMarks(): MarkStore {
  const marks = new Map<string, { value: number; expires: number }>();
  const epoch = Date.now();
  return {
    async raise(key, value, ttlMs) {
      const now = Date.now();
      const current = marks.get(key);
      if (current && current.expires > now && current.value >= value) return;
      marks.set(key, { value, expires: now + ttlMs });
      // Expired marks go when the map grows (one per viewer who wrote in the last TTL).
      if (marks.size > 10_000) for (const [k, m] of marks) if (m.expires <= now) marks.delete(k);
    },
    async read(key, lossWindowMs) {
      const now = Date.now();
      const mark = marks.get(key);
      return markValue(mark && mark.expires > now ? mark.value : null, epoch, now, lossWindowMs);
    },
  };
}

/** What a failed load leaves in the places of its keys: an Error, whatever was thrown. */
export function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

class CacheTimeoutError extends Error {
  override name = 'CacheTimeoutError';
}

/** What Keyv keeps in a store for one key (serialised to text for Redis, as it is in memory). */
interface StoredData {
  value: unknown;
  expires?: number;
}

/**
 * A Map that drops its oldest entries past a size (the in-memory store must not grow without end),
 * and freezes what it keeps: values are shared by every later read, so a reader that mutated one would
 * change what everyone else reads. Redis hands each read its own copy; here a mutation throws instead.
 */
class BoundedMap<K> extends Map<K, StoredData> {
  constructor(private readonly max: number) {
    super();
  }

  override set(key: K, data: StoredData): this {
    if (this.has(key)) this.delete(key);
    deepFreeze(data.value);
    super.set(key, data);
    if (this.size > this.max) this.delete(this.keys().next().value as K);
    return this;
  }
}

function deepFreeze(value: unknown, depth = 0): void {
  if (value === null || typeof value !== 'object' || Object.isFrozen(value) || depth > 32) return;
  Object.freeze(value);
  for (const v of Object.values(value)) deepFreeze(v, depth + 1);
}

/**
 * Creates missing tag versions atomically: for each key, stores `fresh` only if the key is absent, and
 * answers the version stored afterwards (ours, or the one another instance wrote first). A plain SET
 * here could overwrite a concurrent invalidation's new version with one that an entry loaded before
 * that write then carries, and that entry would count as current until its TTL.
 */
type CreateTagVersions = (entries: readonly { key: string; fresh: string }[], ttlMs: number) => Promise<string[]>;

/** A new tag version; after a write, it carries that write's position (`<random>.<lsn>`). */
const newVersion = (position = 0): string => {
  const random = randomBytes(6).toString('base64url');
  return position > 0 ? `${random}.${position}` : random;
};

/** The write position a tag version carries (0: none, e.g. a version made for a tag never written). */
export function versionPosition(version: string | undefined): number {
  if (!version) return 0;
  const dot = version.indexOf('.');
  return dot < 0 ? 0 : Number(version.slice(dot + 1)) || 0;
}

/** What listeners learn of a committed write besides its tags. */
export interface WriteInfo {
  /** The primary's WAL position after the commit (0 without read replicas). */
  position: number;
  /** The viewers who made it (a request's viewer). */
  actors: readonly number[];
}

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
  private readonly entryPrefix: string;
  private readonly flights = new Map<string, Promise<unknown>>();
  /** Tag versions this process is creating, so concurrent misses of one cold tag ask the store once. */
  private readonly creatingVersions = new Map<string, Promise<string>>();
  /** Tags whose new version is not written yet, with the write position (LSN) the version must carry. */
  private readonly pendingInvalidations = new Map<string, number>();
  /** Marks that could not be raised yet (the store was away), retried with the invalidations. */
  private readonly pendingMarks = new Map<string, { value: number; ttlMs: number }>();
  private readonly invalidationListeners: ((tags: readonly string[], write: WriteInfo) => Promise<void> | void)[] = [];
  private replayTimer: NodeJS.Timeout | null = null;
  private replayDelayMs = REPLAY_FIRST_MS;
  private lastErrorLog = 0;
  private suppressedErrors = 0;

  /** Settles when the store first answers (the memory store at once). */
  private connected: Promise<unknown> = Promise.resolve();

  /** Round trip to the store (Redis PING); null for the memory store, which cannot be down. */
  private pingStore: (() => Promise<unknown>) | null = null;

  /** Monotonic numbers by name (see `raiseMark`): atomic in Redis, a map in memory. */
  private marks: MarkStore = memoryMarks();

  private constructor(
    readonly keyv: Keyv,
    private readonly options: CacheServiceOptions,
    private readonly createTagVersions: CreateTagVersions,
    private readonly closeStore: () => Promise<void>,
  ) {
    this.build = options.build ?? 'main';
    this.entryPrefix = `q:${this.build}:`;
    keyv.on('error', () => {
      // Errors are also thrown (throwOnErrors) and counted where they happen.
    });
  }

  static create(options: CacheServiceOptions): CacheService {
    const keyvOptions = { namespace: options.namespace, serialize, deserialize, throwOnErrors: true };
    if (!options.redisUrl) {
      // In process memory the values are kept as they are, frozen (no JSON round trip per hit), and
      // Dates stay Dates. The map is this service's alone, so keys need no namespace prefix.
      const map = new BoundedMap<string>(options.maxMemoryEntries ?? 50_000);
      const keyv = new Keyv({ namespace: options.namespace, throwOnErrors: true, serialize: undefined, deserialize: undefined, store: map, useKeyPrefix: false });
      // One synchronous check-and-set per tag: nothing can run between the check and the set.
      const createTagVersions: CreateTagVersions = async (entries, ttlMs) =>
        entries.map(({ key, fresh }) => {
          const now = Date.now();
          const current = map.get(key);
          if (current && typeof current.value === 'string' && !(typeof current.expires === 'number' && now > current.expires)) return current.value;
          map.set(key, { value: fresh, expires: now + ttlMs });
          return fresh;
        });
      return new CacheService(keyv, options, createTagVersions, async () => {});
    }
    const client = createClient({
      url: options.redisUrl,
      // While Redis is away, commands fail at once instead of queueing; reads go to SQL meanwhile.
      disableOfflineQueue: true,
      socket: {
        connectTimeout: Math.max(1000, options.timeoutMs * 10),
        reconnectStrategy: (retries: number) => Math.min(50 * 2 ** retries, 2000),
      },
    });
    // The adapter's own namespace prefixes keys once; Keyv must not add a second prefix.
    const store = new KeyvRedis(client as never, { namespace: options.namespace, throwOnConnectError: false, throwOnErrors: true });
    const keyv = new Keyv({ ...keyvOptions, store, useKeyPrefix: false });
    // SET NX GET (Redis 7): sets only an absent key, and answers the value that was there if any.
    const createTagVersions: CreateTagVersions = (entries, ttlMs) =>
      Promise.all(
        entries.map(async ({ key, fresh }) => {
          const text = (await keyv.serializeData({ value: fresh, expires: Date.now() + ttlMs })) as string;
          const previous = await client.set(store.createKeyPrefix(key, options.namespace), text, { PX: ttlMs, NX: true, GET: true });
          if (previous === null) return fresh;
          const data = (await keyv.deserializeData(previous)) as StoredData | undefined;
          if (typeof data?.value !== 'string') throw new Error(`tag version ${key} holds no version`);
          return data.value;
        }),
      );
    const service = new CacheService(keyv, options, createTagVersions, async () => {
      try {
        if (client.isOpen) await client.close();
      } catch {
        client.destroy();
      }
    });
    client.on('error', (err: unknown) => service.noteError(err));
    client.on('ready', () => void service.flushPendingInvalidations());
    service.pingStore = () => client.ping();
    const marksHash = `${options.namespace}:marks`;
    const marksTimes = `${options.namespace}:marks:at`;
    service.marks = {
      // One script each: the stored number only ever grows, whatever order concurrent writers land in,
      // and a read knows whether an absent mark can be trusted.
      raise: async (key, value, ttlMs) => {
        await client.eval(RAISE_MARK, { keys: [marksHash, marksTimes], arguments: [key, String(value), String(ttlMs)] });
      },
      read: async (key, lossWindowMs) => {
        const [mark, epoch, now] = (await client.eval(READ_MARK, { keys: [marksHash], arguments: [key] })) as [string | null, number, number];
        return markValue(mark === null ? null : Number(mark), epoch, now, lossWindowMs);
      },
    };
    service.connected = client.connect().catch((err: unknown) => service.noteError(err));
    return service;
  }

  /**
   * Waits, at most `timeoutMs`, for the store to be connected. Start-up calls it so the first requests
   * find Redis ready; if it is down, the app starts anyway and reads go to PostgreSQL until it returns.
   */
  async ready(timeoutMs = 2000): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
    const connected = this.connected.then(() => true);
    try {
      return await Promise.race([connected, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** For readiness: 'ok', or why the store does not answer; null when there is no remote store. */
  async ping(): Promise<'ok' | string | null> {
    if (!this.pingStore) return null;
    try {
      await this.guard(this.pingStore());
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
    if (this.pendingInvalidations.size > 0 || this.pendingMarks.size > 0) await this.flushPendingInvalidations();
    const tags = [...new Set(requests.flatMap((r) => (r.watch ? [...r.tags, ...r.watch] : r.tags)))];
    let raw: unknown[] | null;
    const keys = [...requests.map((r) => this.entryPrefix + r.key), ...tags.map((t) => TAG_PREFIX + t)];
    try {
      raw = tracingOn
        ? await traced('cache.lookup', { 'paygraph.cache.store': this.pingStore ? 'redis' : 'memory', 'paygraph.cache.keys': keys.length }, () => this.guard(this.keyv.getMany(keys)))
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
        versions = await this.currentTagVersions(tags, raw.slice(requests.length), loggerContext);
      } catch (err) {
        // Without a version known to be the store's, nothing may be stored: the load goes to SQL only.
        this.countError(stats, err);
      }
    }
    // A tag this instance could not yet bump is not current at any version the store holds.
    onVersions?.(versions && !tags.some((t) => this.pendingInvalidations.has(t)) ? versions : null);
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

    // Single flight: a miss already being loaded by this process, for the same versions, is awaited.
    // Every promise below gets its handlers where it is made, and none of the waits can reject: a
    // failed load writes its error into the places of its keys, so one failure fails those keys only.
    const toLoad: number[] = [];
    const waits: Promise<void>[] = [];
    for (const i of missing) {
      const flight = versions ? this.flights.get(this.flightKey(requests[i]!, versions)) : undefined;
      if (flight) {
        waits.push(
          flight.then(
            (value) => void (results[i] = value as T),
            (err: unknown) => void (results[i] = asError(err)),
          ),
        );
      } else toLoad.push(i);
    }
    if (toLoad.length > 0) {
      // Stored before the flights resolve: a request that comes after them finds the entry. `store`
      // counts its own failures, so this rejects only when the load itself failed.
      const load = loadMissing(toLoad).then(async (values) => {
        if (versions) await this.store(requests, toLoad, values, versions, ttlMs, stats);
        return values;
      });
      if (versions) {
        toLoad.forEach((i, n) => {
          const key = this.flightKey(requests[i]!, versions);
          const flight: Promise<unknown> = load.then((values) => values[n]);
          const forget = () => void (this.flights.get(key) === flight && this.flights.delete(key));
          void flight.then(forget, forget);
          this.flights.set(key, flight);
        });
      }
      waits.push(
        load.then(
          (values) => {
            toLoad.forEach((i, n) => (results[i] = values[n] as T));
          },
          (err: unknown) => {
            const error = asError(err);
            for (const i of toLoad) results[i] = error;
          },
        ),
      );
    }
    await Promise.all(waits);
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
  async invalidate(tags: readonly string[], options: { actors?: readonly number[] } = {}): Promise<void> {
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
    for (const tag of tags) this.pendingInvalidations.set(tag, Math.max(position, this.pendingInvalidations.get(tag) ?? 0));
    await this.flushPendingInvalidations();
    // Writes call this after they commit: what they changed is final, whatever the store said.
    const write: WriteInfo = { position, actors: options.actors ?? [] };
    for (const listener of this.invalidationListeners) {
      try {
        await listener(tags, write);
      } catch (err) {
        this.noteError(err);
      }
    }
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
    if (this.pendingInvalidations.size > 0) await this.flushPendingInvalidations();
    const stored = await this.guard(this.keyv.getMany(tags.map((t) => TAG_PREFIX + t)));
    return tags.map((tag, i) => (typeof stored[i] === 'string' && !this.pendingInvalidations.has(tag) ? (stored[i] as string) : undefined));
  }

  /**
   * Raises the number named `key` to `value` if it is lower, for `ttlMs` (read-your-writes: the WAL
   * position of a viewer's latest write). Concurrent raises keep the highest. Fails open (counted).
   */
  async raiseMark(key: string, value: number, ttlMs: number): Promise<void> {
    try {
      await this.guard(this.marks.raise(key, value, ttlMs));
    } catch (err) {
      this.totals.errors++;
      this.noteError(err);
      // Retried with the invalidations; until it lands this instance reads that mark as unknown.
      const pending = this.pendingMarks.get(key);
      this.pendingMarks.set(key, { value: Math.max(value, pending?.value ?? 0), ttlMs });
      this.scheduleReplay();
    }
  }

  /**
   * The number named `key`: 0 when none is held, UNKNOWN_POSITION when one may have been lost (the
   * store's marks are younger than `lossWindowMs`: evicted, flushed or restarted empty that recently;
   * or this instance could not write it yet). Throws when the store does not answer.
   */
  async readMark(key: string, lossWindowMs: number): Promise<number> {
    if (this.pendingMarks.has(key)) return UNKNOWN_POSITION;
    return this.guard(this.marks.read(key, lossWindowMs));
  }

  /** True with a remote store (Redis): entries are shared by every instance. */
  get isShared(): boolean {
    return this.pingStore !== null;
  }

  /** Invalidations written by nobody yet (tests and metrics). */
  get pendingInvalidationCount(): number {
    return this.pendingInvalidations.size;
  }

  /**
   * A plain key-value view of the store under `prefix` (Apollo's `KeyValueCache`, for persisted
   * queries): shared by every instance on Redis, bounded by the timeout, and failing open (an error
   * reads as a miss; a failed write is counted and dropped).
   */
  keyValueStore(prefix: string) {
    const fail = (err: unknown) => {
      this.totals.errors++;
      this.noteError(err);
    };
    return {
      get: async (key: string): Promise<string | undefined> => {
        try {
          const value = await this.guard(this.keyv.get(prefix + key));
          return typeof value === 'string' ? value : undefined;
        } catch (err) {
          fail(err);
          return undefined;
        }
      },
      set: async (key: string, value: string, options?: { ttl?: number | null }): Promise<void> => {
        try {
          await this.guard(this.keyv.set(prefix + key, value, options?.ttl ? options.ttl * 1000 : undefined));
        } catch (err) {
          fail(err);
        }
      },
      delete: async (key: string): Promise<boolean> => {
        try {
          return await this.guard(this.keyv.delete(prefix + key));
        } catch (err) {
          fail(err);
          return false;
        }
      },
    };
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
    if (this.replayTimer) clearTimeout(this.replayTimer);
    this.replayTimer = null;
    // A last chance for invalidations still unwritten (bounded by the timeout like every call).
    await this.flushPendingInvalidations(false);
    await this.closeStore();
  }

  private async flushPendingInvalidations(retryLater = true): Promise<void> {
    for (const [key, { value, ttlMs }] of [...this.pendingMarks]) {
      try {
        await this.guard(this.marks.raise(key, value, ttlMs));
        if (this.pendingMarks.get(key)?.value === value) this.pendingMarks.delete(key);
      } catch (err) {
        this.totals.errors++;
        this.noteError(err);
        if (retryLater) this.scheduleReplay();
        return;
      }
    }
    if (this.pendingInvalidations.size === 0) return;
    const pending = [...this.pendingInvalidations];
    const tags = pending.map(([t]) => t);
    try {
      await this.guard(this.keyv.setMany(pending.map(([t, position]) => ({ key: TAG_PREFIX + t, value: newVersion(position), ttl: TAG_TTL_MS }))));
      for (const t of tags) this.pendingInvalidations.delete(t);
      this.replayDelayMs = REPLAY_FIRST_MS;
    } catch (err) {
      this.totals.errors++;
      this.noteError(err);
      if (retryLater) this.scheduleReplay();
    }
  }

  /** Retries unwritten invalidations on a timer, so they land even if this instance reads nothing more. */
  private scheduleReplay(): void {
    if (this.replayTimer) return;
    const delay = this.replayDelayMs;
    this.replayDelayMs = Math.min(delay * 2, REPLAY_MAX_MS);
    this.replayTimer = setTimeout(() => {
      this.replayTimer = null;
      void this.flushPendingInvalidations();
    }, delay);
    this.replayTimer.unref();
  }

  /**
   * The store's current version of each tag. Missing ones (never written, expired or evicted) are
   * created atomically and the version the store then holds is used, so an invalidation that lands
   * between our read and our create always wins. Concurrent misses of a tag in this process share one
   * creation. The load starts only after this, so whatever it reads is at least as new as the versions.
   */
  private async currentTagVersions(tags: string[], stored: unknown[], loggerContext?: Record<string, unknown>): Promise<Record<string, string>> {
    const versions: Record<string, string> = {};
    const waiting: [string, Promise<string>][] = [];
    const toCreate: { tag: string; key: string }[] = [];
    tags.forEach((tag, i) => {
      const v = stored[i];
      if (typeof v === 'string') versions[tag] = v;
      else {
        const joined = this.creatingVersions.get(tag);
        if (joined) waiting.push([tag, joined]);
        else toCreate.push({ tag, key: TAG_PREFIX + tag });
      }
    });
    if (toCreate.length > 0) {
      // The tag's last write is unknown here (it may have been evicted or flushed away): the new
      // version carries the primary's position now, which is past that write, so no replica that
      // has not replayed it fills anything under it.
      const created = this.positionNow(loggerContext).then((position) =>
        this.guard(this.createTagVersions(toCreate.map(({ key }) => ({ key, fresh: newVersion(position) })), TAG_TTL_MS)),
      );
      toCreate.forEach(({ tag }, n) => {
        const version = created.then((all) => all[n]!);
        this.creatingVersions.set(tag, version);
        const forget = () => this.creatingVersions.get(tag) === version && this.creatingVersions.delete(tag);
        version.then(forget, forget);
        waiting.push([tag, version]);
      });
    }
    // Each creation already has a handler (the `forget` above): awaiting them together leaves none behind.
    const settled = await Promise.all(waiting.map(([, version]) => version));
    waiting.forEach(([tag], n) => (versions[tag] = settled[n]!));
    return versions;
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
      if (this.pendingInvalidations.has(tag) || entry.t?.[tag] !== versions[tag]) return false;
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
    if (!this.pingStore) return operation;
    let timer: NodeJS.Timeout;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new CacheTimeoutError(`cache store did not answer within ${timeoutMs} ms`)), timeoutMs);
    });
    return Promise.race([operation, timeout]).finally(() => clearTimeout(timer));
  }
}
