import type { WriteChange } from './tags.js';

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
  /** Memory store only: entries kept at most (least recently used dropped first). */
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
export interface Entry {
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


/** What a failed load leaves in the places of its keys: an Error, whatever was thrown. */
export function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

export class CacheTimeoutError extends Error {
  override name = 'CacheTimeoutError';
}

/** What listeners learn of a committed write besides its tags. */
export interface WriteInfo {
  /** What it changed (empty for a bare invalidation of tags). */
  change: WriteChange;
  /** The primary's WAL position after the commit (0 without read replicas). */
  position: number;
  /** The viewers who made it (a request's viewer). */
  actors: readonly number[];
}
