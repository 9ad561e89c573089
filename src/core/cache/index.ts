export { CacheService, type CacheServiceOptions, type LayerStats, type WriteInfo } from './cache.service.js';
export { QueryCache, ReadDependencies, type CacheSpec, type QueryCacheStats } from './query-cache.js';
export { cached, cachedFunction, bindQueryCache, queryCacheFor } from './cached.js';
export { cacheKey } from './cache-key.js';
export { serialize, deserialize } from './serialize.js';

import type { CacheService } from './cache.service.js';

/** Empties the shared cache of an app instance (the original design note's `clear_cache()`). */
export async function clearCache(cache: CacheService): Promise<void> {
  await cache.clear();
}
export { cacheTags, isEmptyChange, mergeChanges, writeOwners, writeTags, type WriteChange } from './tags.js';
