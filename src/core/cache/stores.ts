import Keyv from 'keyv';
import KeyvRedis from '@keyv/redis';
import { deserialize, serialize } from './serialize.js';
import { Lru } from '../lru.js';
import { closeRedisClient, createRedisClient } from '../redis.js';
import { memoryMarks, redisMarks, type MarkStore } from './marks.js';
import type { CreateTagVersions } from './versions.js';

/** What Keyv keeps in a store for one key (serialised to text for Redis, as it is in memory). */
interface StoredData {
  value: unknown;
  expires?: number;
}

/** The parts of one store the cache is built on: Keyv over it, atomic version creation, marks. */
export interface StoreParts {
  keyv: Keyv;
  createTagVersions: CreateTagVersions;
  marks: MarkStore;
  /** Round trip to the store (Redis PING); null for memory, which cannot be down. */
  ping: (() => Promise<unknown>) | null;
  /** Settles when the store first answers (memory at once). */
  connected: Promise<unknown>;
  close(): Promise<void>;
}

/**
 * The memory store's map: the least recently used entries go past a size (it must not grow without
 * end), and what it keeps is frozen: values are shared by every later read, so a reader that mutated
 * one would change what everyone else reads. Redis hands each read its own copy; here a mutation throws.
 */
class FrozenLru extends Lru<string, StoredData> {
  override set(key: string, data: StoredData): this {
    deepFreeze(data.value);
    return super.set(key, data);
  }
}

function deepFreeze(value: unknown, depth = 0): void {
  if (value === null || typeof value !== 'object' || Object.isFrozen(value) || depth > 32) return;
  Object.freeze(value);
  for (const v of Object.values(value)) deepFreeze(v, depth + 1);
}

/**
 * In process memory: values are kept as they are, frozen (no JSON round trip per hit), and Dates stay
 * Dates. The map is this cache's alone, so keys need no namespace prefix.
 */
export function memoryStore(options: { namespace: string; maxEntries: number }): StoreParts {
  const map = new FrozenLru(options.maxEntries);
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
  return { keyv, createTagVersions, marks: memoryMarks(), ping: null, connected: Promise.resolve(), close: async () => {} };
}

/** Redis, shared by every instance on the same namespace. `hooks` hear of errors and of each (re)connection. */
export function redisStore(
  options: { url: string; namespace: string; timeoutMs: number },
  hooks: { onError(err: unknown): void; onReady(): void },
): StoreParts {
  const client = createRedisClient(options.url, { connectTimeoutMs: Math.max(1000, options.timeoutMs * 10) });
  // The adapter's own namespace prefixes keys once; Keyv must not add a second prefix.
  const store = new KeyvRedis(client as never, { namespace: options.namespace, throwOnConnectError: false, throwOnErrors: true });
  const keyv = new Keyv({ namespace: options.namespace, serialize, deserialize, throwOnErrors: true, store, useKeyPrefix: false });
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
  client.on('error', (err: unknown) => hooks.onError(err));
  client.on('ready', () => hooks.onReady());
  return {
    keyv,
    createTagVersions,
    marks: redisMarks(client, options.namespace),
    ping: () => client.ping(),
    connected: client.connect().catch((err: unknown) => hooks.onError(err)),
    close: () => closeRedisClient(client),
  };
}
