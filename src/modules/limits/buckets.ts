import { createHash } from 'node:crypto';
import { Lru } from '../../core/lru.js';
import { closeRedisClient, createRedisClient, type RedisClient } from '../../core/redis.js';

/** A leaky bucket's size: it holds at most `capacity` points and refills at `restorePerSecond`. */
export interface BucketSpec {
  readonly capacity: number;
  readonly restorePerSecond: number;
}

/** What a take answered: allowed or not, the points left after it, and when to retry if refused. */
export interface Taken {
  allowed: boolean;
  /** Points in the bucket after the take (before it, when refused). */
  available: number;
  /** Refused: seconds until the bucket holds the points asked for (at least 1). */
  retryAfterSeconds: number;
}

/** Buckets by key: `take` removes points if there are enough, `give` puts some back (at most full). */
export interface Buckets {
  take(key: string, cost: number, spec: BucketSpec): Promise<Taken>;
  give(key: string, points: number, spec: BucketSpec): Promise<void>;
}

export function retryAfter(cost: number, available: number, spec: BucketSpec): number {
  return Math.max(1, Math.ceil((cost - available) / spec.restorePerSecond));
}

/**
 * Buckets in this process's memory: exact for one instance. Bounded: past `maxKeys` the least recently
 * used bucket is forgotten (it comes back full, as a new client's would).
 */
export class LocalBuckets implements Buckets {
  private readonly buckets: Lru<string, { available: number; at: number }>;

  constructor(
    maxKeys = 100_000,
    private readonly now: () => number = Date.now,
  ) {
    this.buckets = new Lru(maxKeys);
  }

  async take(key: string, cost: number, spec: BucketSpec): Promise<Taken> {
    const bucket = this.refilled(key, spec);
    if (cost > bucket.available) return { allowed: false, available: bucket.available, retryAfterSeconds: retryAfter(cost, bucket.available, spec) };
    bucket.available -= cost;
    return { allowed: true, available: bucket.available, retryAfterSeconds: 0 };
  }

  async give(key: string, points: number, spec: BucketSpec): Promise<void> {
    const bucket = this.refilled(key, spec);
    bucket.available = Math.min(spec.capacity, bucket.available + points);
  }

  /** Forgets every bucket (the shared store is back and holds the budgets again). */
  clear(): void {
    this.buckets.clear();
  }

  private refilled(key: string, spec: BucketSpec): { available: number; at: number } {
    const now = this.now();
    let bucket = this.buckets.get(key);
    if (bucket) {
      bucket.available = Math.min(spec.capacity, bucket.available + ((now - bucket.at) * spec.restorePerSecond) / 1000);
      bucket.at = now;
    } else {
      bucket = { available: spec.capacity, at: now };
      this.buckets.set(key, bucket);
    }
    return bucket;
  }
}

/**
 * One script per take or give: the refill, the check and the update are one atomic step, so every
 * instance shares each bucket exactly. Time is Redis's own (TIME), so instances' clocks do not matter.
 * A bucket is a hash {a: points, t: ms}; it expires once it would be full again (a full bucket and an
 * absent one are the same).
 */
const BUCKET_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local points = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'a', 't')
local available = tonumber(state[1])
local at = tonumber(state[2])
if available == nil or at == nil then
  available = capacity
else
  available = math.min(capacity, available + math.max(0, now - at) * rate / 1000)
end
local allowed = 1
if ARGV[4] == 'take' then
  if points > available then
    allowed = 0
  else
    available = available - points
  end
else
  available = math.min(capacity, available + points)
end
if available >= capacity then
  redis.call('DEL', KEYS[1])
else
  redis.call('HSET', KEYS[1], 'a', tostring(available), 't', tostring(now))
  redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - available) * 1000 / rate) + 1000)
end
return {allowed, tostring(available)}
`;
const BUCKET_SCRIPT_SHA = createHash('sha1').update(BUCKET_SCRIPT).digest('hex');

/** Buckets in Redis, shared by every instance on the same namespace. */
export class RedisBuckets implements Buckets {
  readonly client: RedisClient;
  readonly connected: Promise<void>;

  constructor(
    url: string,
    private readonly prefix: string,
    onError: (err: unknown) => void,
  ) {
    // While Redis is away, commands fail at once (the caller falls back to local buckets).
    this.client = createRedisClient(url);
    this.client.on('error', onError);
    this.connected = this.client.connect().then(
      () => undefined,
      (err: unknown) => onError(err),
    );
  }

  async take(key: string, cost: number, spec: BucketSpec): Promise<Taken> {
    const [allowed, available] = await this.run(key, cost, spec, 'take');
    return { allowed, available, retryAfterSeconds: allowed ? 0 : retryAfter(cost, available, spec) };
  }

  async give(key: string, points: number, spec: BucketSpec): Promise<void> {
    await this.run(key, points, spec, 'give');
  }

  async ping(): Promise<void> {
    await this.client.ping();
  }

  close(): Promise<void> {
    return closeRedisClient(this.client);
  }

  private async run(key: string, points: number, spec: BucketSpec, mode: 'take' | 'give'): Promise<[boolean, number]> {
    const options = { keys: [this.prefix + key], arguments: [String(spec.capacity), String(spec.restorePerSecond), String(points), mode] };
    let reply: unknown;
    try {
      reply = await this.client.evalSha(BUCKET_SCRIPT_SHA, options);
    } catch (err) {
      // First use on this Redis (or after a restart or SCRIPT FLUSH): send the script itself, which loads it.
      if (!String((err as Error)?.message).startsWith('NOSCRIPT')) throw err;
      reply = await this.client.eval(BUCKET_SCRIPT, options);
    }
    const [allowed, available] = reply as [number, string];
    return [allowed === 1, Number(available)];
  }
}
