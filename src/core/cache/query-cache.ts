import { cacheKey } from './cache-key.js';
import { emptyStats, type CacheService, type LayerStats } from './cache.service.js';

export interface CacheSpec<Args extends unknown[]> {
  /** Seconds; the service default (CACHE_TTL_SECONDS) when unset. */
  ttl?: number;
  /** Invalidation tags from the arguments, e.g. `([id]) => [\`user:${id}\`]`. */
  tags?: (args: Args) => string[];
}

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

  constructor(
    private readonly service: CacheService | null,
    options: { enabled: boolean },
  ) {
    this.on = options.enabled && service !== null;
  }

  get enabled(): boolean {
    return this.on;
  }

  /** Turns caching off for the rest of the request (a mutation; a client asking for fresh data). */
  disable(): void {
    this.on = false;
    this.memo.clear();
  }

  /** A single value: from the memo, the shared store, or `load`. */
  async getOrLoad<const Args extends unknown[], T>(name: string, args: Args, spec: CacheSpec<NoInfer<Args>>, load: () => Promise<T>): Promise<T> {
    const [value] = await this.getOrLoadMany(name, [args], spec, async () => [await load()]);
    return value as T;
  }

  /**
   * Values for several argument lists in one store round trip; `loadMissing` gets the argument lists
   * of the misses only, and answers in the same order.
   */
  async getOrLoadMany<const Args extends unknown[], T>(
    name: string,
    argLists: readonly Args[],
    spec: CacheSpec<NoInfer<Args>>,
    loadMissing: (missing: Args[]) => Promise<T[]>,
  ): Promise<T[]> {
    if (!this.on || !this.service) return loadMissing([...argLists]);
    const service = this.service;
    const keys = argLists.map((args) => `${name}:${cacheKey(...args)}`);
    const results: Promise<T>[] = new Array(argLists.length);
    const fresh: number[] = [];
    const firstOfKey = new Map<string, number>();
    keys.forEach((key, i) => {
      const memo = this.memo.get(key) as Promise<T> | undefined;
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
      const batch = service.getOrLoadMany(
        unique.map((i) => ({ key: keys[i]!, tags: spec.tags?.(argLists[i]!) ?? [] })),
        spec.ttl !== undefined ? spec.ttl * 1000 : service.defaultTtlMs,
        async (missing) => loadMissing(missing.map((m) => argLists[unique[m]!]!)),
        this.shared,
      );
      unique.forEach((i, n) => {
        const value = batch.then((values) => values[n] as T);
        results[i] = value;
        this.memo.set(keys[i]!, value);
        // A failed load must not stay memoised for the rest of the request.
        value.catch(() => this.memo.get(keys[i]!) === value && this.memo.delete(keys[i]!));
      });
      for (const i of fresh) results[i] ??= results[firstOfKey.get(keys[i]!)!]!;
    }
    return Promise.all(results);
  }

  /** Invalidates tags everywhere, whether or not this request reads through the cache. */
  async invalidate(tags: readonly string[]): Promise<void> {
    this.memo.clear();
    await this.service?.invalidate(tags);
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
