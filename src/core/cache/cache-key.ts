import { createHash } from 'node:crypto';
import { EntityManager } from '@mikro-orm/core';

/** Values that never belong in a key: the entity manager, and anything carrying one (a context). */
function isExcluded(value: unknown): boolean {
  if (value instanceof EntityManager) return true;
  return value !== null && typeof value === 'object' && 'em' in value && (value as { em: unknown }).em instanceof EntityManager;
}

/** Canonical text: object keys sorted, Dates as ISO, undefined dropped, so equal arguments are equal text. */
function canonical(value: unknown): string {
  if (value === undefined) return 'u';
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'u';
  if (value instanceof Date) return `D${value.toISOString()}`;
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  const entries = Object.keys(value)
    .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`);
  return `{${entries.join(',')}}`;
}

/**
 * A stable hash of the arguments (the original design note's `cache_key`): the same arguments in any
 * key order give the same key, different arguments a different one. Entity managers and contexts
 * are left out.
 */
export function cacheKey(...args: unknown[]): string {
  const kept = args.filter((a) => !isExcluded(a));
  const text = canonical(kept);
  // Short arguments (an id, a few numbers) are their own key: a hash would only cost time per read.
  // A '#' starts every hashed key, so no canonical text (which starts with '[') can equal one.
  return text.length <= MAX_PLAIN_KEY ? text : `#${createHash('sha1').update(text).digest('base64url')}`;
}

/** Longest canonical argument text used as a key as it is (sha1's base64url is 27 characters). */
const MAX_PLAIN_KEY = 48;
