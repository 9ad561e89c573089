import type { RedisClient } from '../redis.js';

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

export interface MarkStore {
  raise(key: string, value: number, ttlMs: number): Promise<void>;
  /** The mark; UNKNOWN_POSITION when it may have been lost (see `markValue`). */
  read(key: string, lossWindowMs: number): Promise<number>;
}

/** One process's marks: lost only with the process, so they are "young" for a lifetime after its start. */
export function memoryMarks(): MarkStore {
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

/**
 * Marks in Redis (one script each): the stored number only ever grows, whatever order concurrent
 * writers land in, and a read knows whether an absent mark can be trusted.
 */
export function redisMarks(client: RedisClient, namespace: string): MarkStore {
  const marksHash = `${namespace}:marks`;
  const marksTimes = `${namespace}:marks:at`;
  return {
    raise: async (key, value, ttlMs) => {
      await client.eval(RAISE_MARK, { keys: [marksHash, marksTimes], arguments: [key, String(value), String(ttlMs)] });
    },
    read: async (key, lossWindowMs) => {
      const [mark, epoch, now] = (await client.eval(READ_MARK, { keys: [marksHash], arguments: [key] })) as [string | null, number, number];
      return markValue(mark === null ? null : Number(mark), epoch, now, lossWindowMs);
    },
  };
}
