import type { SqlEntityManager } from '@mikro-orm/postgresql';
import { cacheKey } from './cache-key.js';
import { writeTags, type WriteChange } from './tags.js';
import { emptyStats, versionPosition, type CacheService, type LayerStats } from './cache.service.js';
import { TAGGED_READ_KEY, taggedReadFork } from '../sql-stats.js';
import { noteErrorRequest } from '../process-faults.js';

export interface CacheSpec<Args extends unknown[]> {
  /** Seconds; the service default (CACHE_TTL_SECONDS) when unset. */
  ttl?: number;
  /** Invalidation tags from the arguments, e.g. `([id]) => [\`user:${id}\`]`. */
  tags?: (args: Args) => string[];
  /**
   * Tags the load may also read under without being the entry's own: e.g. a payment read joined to its
   * user primes that user's row, which the `users` tag covers. Their versions are read with the entry's
   * (before the load) and become dependencies of the request's response, not of the entry.
   */
  watch?: (args: Args) => string[];
}

/**
 * The tags, with their versions, that one request's reads depended on (read before each load, so a
 * write that commits during it leaves an older version here). The response cache keeps a response
 * only while every one of them is still current, and not at all if some version could not be read.
 */
export class ReadDependencies {
  readonly versions = new Map<string, string>();
  private known = true;

  /** The versions one lookup was made at; null when the store could not say. */
  note(tags: readonly string[], versions: Readonly<Record<string, string>> | null): void {
    if (!versions) {
      this.known = false;
      return;
    }
    for (const tag of tags) {
      const version = versions[tag];
      const seen = this.versions.get(tag);
      // One request read a tag at two versions: a write landed between its reads; keep nothing.
      if (version === undefined || (seen !== undefined && seen !== version)) this.known = false;
      else this.versions.set(tag, version);
    }
  }

  /** A read whose dependencies no tag names (or a cache turned off midway): nothing is known. */
  unknown(): void {
    this.known = false;
  }

  get complete(): boolean {
    return this.known;
  }
}

export interface QueryCacheOptions {
  enabled: boolean;
  /**
   * The request's EntityManager. Loads get a fork of it that marks their statements as tagged reads
   * (see `taggedReadFork`); with the cache off, or without `em`, loads get `em` itself.
   */
  em?: SqlEntityManager;
  /** Where this scope notes what it read (shared with other scopes of one request); a new one if unset. */
  dependencies?: ReadDependencies;
  /**
   * With read replicas: the EntityManager for a load that must see every write up to `position` (the
   * highest write position its tags' versions carry, and the viewer's own latest write), on a replica
   * that has replayed it, or null for the primary. `tagged` says whether its statements are tagged reads.
   */
  route?: (position: number, tagged: boolean) => Promise<SqlEntityManager | null>;
}

/** What a load gets: the arguments of its misses, and the EntityManager to read them with. */
export type LoadMissing<Args, T> = (missing: Args[], em: SqlEntityManager) => Promise<T[]>;

export interface QueryCacheStats extends LayerStats {
  /** Answered by this request's own memo, without reaching the shared store. */
  l1: { hits: number };
  /** Reached the shared store (memory or Redis). */
  shared: LayerStats;
}

/**
 * One request's view of the query cache (the original design note's `QueryCache` scope): an L1 memo
 * in front of the shared cache, so the same key asked twice in a request reaches the store once;
 * statistics; and `enabled`, which is off for mutations, for `Cache-Control: no-cache` requests and
 * when the cache is turned off. Disabled, every read goes straight to its loader.
 */
export class QueryCache {
  private readonly memo = new Map<string, Promise<unknown>>();
  private readonly l1 = { hits: 0 };
  private readonly shared: LayerStats = emptyStats();
  private on: boolean;
  private readonly em: SqlEntityManager | undefined;
  private readerEm: SqlEntityManager | undefined;
  private route: QueryCacheOptions['route'];
  /** The viewer whose request this is: their writes' positions are kept for their later reads. */
  actorId: number | null = null;
  /** The tags (and versions) this request's cached reads depended on. */
  readonly dependencies: ReadDependencies;

  constructor(
    private readonly service: CacheService | null,
    options: QueryCacheOptions,
  ) {
    this.on = options.enabled && service !== null;
    this.em = options.em;
    this.route = options.route;
    this.dependencies = options.dependencies ?? new ReadDependencies();
  }

  /**
   * The EntityManager a load reads with: the tagged fork (made at the first miss) while enabled. A scope
   * made without one (tests of the cache alone, whose loads read no database) hands its loads none.
   */
  private async loadEm(versions: Readonly<Record<string, string>> | null = null): Promise<SqlEntityManager> {
    if (!this.em) return undefined as unknown as SqlEntityManager;
    if (this.route) {
      let position = 0;
      if (versions) for (const v of Object.values(versions)) position = Math.max(position, versionPosition(v));
      const routed = await this.route(position, this.on);
      if (routed) return routed;
    }
    if (!this.on) return this.em;
    return (this.readerEm ??= taggedReadFork(this.em));
  }

  /** Routes this scope's loads from now on (once the viewer, and so their last write, is known). */
  routeReads(route: NonNullable<QueryCacheOptions['route']>): void {
    this.route = route;
  }

  get enabled(): boolean {
    return this.on;
  }

  /** Turns caching off for the rest of the request (a mutation; a client asking for fresh data). */
  disable(): void {
    this.on = false;
    this.memo.clear();
    this.dependencies.unknown();
    // A mutation's reads (those after its writes above all) read the primary.
    this.route = undefined;
  }

  /** A single value: from the memo, the shared store, or `load` (whose failure it throws). */
  async getOrLoad<const Args extends unknown[], T>(
    name: string,
    args: Args,
    spec: CacheSpec<NoInfer<Args>>,
    load: (em: SqlEntityManager) => Promise<T>,
  ): Promise<T> {
    const [value] = await this.getOrLoadMany(name, [args], spec, async (_missing, em) => [await load(em)]);
    if (value instanceof Error) throw value;
    return value as T;
  }

  /**
   * Values for several argument lists in one store round trip; `loadMissing` gets the argument lists
   * of the misses only, and answers in the same order. A key whose load failed holds its `Error` (a
   * DataLoader batch function returns this array as it is: the error fails that key only). With the
   * cache off, `loadMissing` runs as it is and its failure is the whole call's.
   */
  async getOrLoadMany<const Args extends unknown[], T>(
    name: string,
    argLists: readonly Args[],
    spec: CacheSpec<NoInfer<Args>>,
    loadMissing: LoadMissing<Args, T>,
  ): Promise<(T | Error)[]> {
    if (!this.on || !this.service) return loadMissing([...argLists], await this.loadEm()).catch(this.tagFailure);
    const service = this.service;
    const keys = argLists.map((args) => `${name}:${cacheKey(...args)}`);
    // Per key: a promise that never rejects (its value, or the Error of a failed load), memoised.
    const results: Promise<T | Error>[] = new Array(argLists.length);
    const fresh: number[] = [];
    const firstOfKey = new Map<string, number>();
    keys.forEach((key, i) => {
      const memo = this.memo.get(key) as Promise<T | Error> | undefined;
      if (memo) {
        this.l1.hits++;
        results[i] = memo;
      } else if (firstOfKey.has(key)) {
        fresh.push(i); // resolved below from its first occurrence
      } else {
        firstOfKey.set(key, i);
        fresh.push(i);
      }
    });
    const unique = fresh.filter((i) => firstOfKey.get(keys[i]!) === i);
    if (unique.length < fresh.length) this.l1.hits += fresh.length - unique.length;
    if (unique.length > 0) {
      const requests = unique.map((i) => ({ key: keys[i]!, tags: spec.tags?.(argLists[i]!) ?? [], watch: spec.watch?.(argLists[i]!) }));
      // The versions the load is made at: they say which writes it must see (where it may read).
      let loadVersions: Readonly<Record<string, string>> | null = null;
      const batch = service.getOrLoadMany(
        requests,
        spec.ttl !== undefined ? spec.ttl * 1000 : service.defaultTtlMs,
        async (missing) => loadMissing(missing.map((m) => argLists[unique[m]!]!), await this.loadEm(loadVersions)).catch(this.tagFailure),
        this.shared,
        (versions) => {
          loadVersions = versions;
          this.dependencies.note([...new Set(requests.flatMap((r) => [...r.tags, ...(r.watch ?? [])]))], versions);
        },
        // A position read for a new tag version is the cache's own, not data: it does not make the
        // response depend on anything untagged.
        this.em ? { ...this.em.getLoggerContext(), [TAGGED_READ_KEY]: true } : undefined,
      );
      unique.forEach((i, n) => {
        const key = keys[i]!;
        const value: Promise<T | Error> = batch.then((values) => {
          const v = values[n] as T | Error;
          // A failed load must not stay memoised for the rest of the request.
          if (v instanceof Error && this.memo.get(key) === value) this.memo.delete(key);
          return v;
        });
        results[i] = value;
        this.memo.set(key, value);
      });
      for (const i of fresh) results[i] ??= results[firstOfKey.get(keys[i]!)!]!;
    }
    // None of these rejects (the service answers a failed load's keys with its Error).
    return Promise.all(results);
  }

  /** A failed load's error remembers the request it was made for (the process fault log names it). */
  private readonly tagFailure = (err: unknown): never => {
    noteErrorRequest(err, this.em?.getLoggerContext().requestId);
    throw err;
  };

  /** Invalidates tags everywhere, whether or not this request reads through the cache. */
  async invalidate(tags: readonly string[], change?: WriteChange): Promise<void> {
    this.memo.clear();
    // Whatever this request reads after its write, it reads on the primary.
    this.route = undefined;
    await this.service?.invalidate(tags, { actors: this.actorId === null ? [] : [this.actorId], change });
  }

  /** Records this request's committed write (see `CacheService.write`): its tags everywhere, and what it changed. */
  write(change: WriteChange): Promise<void> {
    return this.invalidate(writeTags(change), change);
  }

  getStats(): QueryCacheStats {
    const s = this.shared;
    return {
      hits: this.l1.hits + s.hits,
      misses: s.misses,
      sets: s.sets,
      errors: s.errors,
      l1: { ...this.l1 },
      shared: { ...s },
    };
  }

  /** Forgets this request's memo (the shared store keeps its entries). */
  clear(): void {
    this.memo.clear();
  }
}
