import { createClient } from '@keyv/redis';

/**
 * A Redis client as every part of the server wants one (the caches, the event bus, the budgets):
 * while Redis is away commands fail at once instead of queueing (each caller falls back: SQL, local
 * delivery, local buckets), and reconnects back off from 50 ms to 2 s.
 */
export function createRedisClient(url: string, options: { connectTimeoutMs?: number } = {}) {
  return createClient({
    url,
    disableOfflineQueue: true,
    socket: {
      connectTimeout: options.connectTimeoutMs ?? 1000,
      reconnectStrategy: (retries: number) => Math.min(50 * 2 ** retries, 2000),
    },
  });
}

export type RedisClient = ReturnType<typeof createRedisClient>;

/** Closes a client, whatever state it is in. */
export async function closeRedisClient(client: RedisClient): Promise<void> {
  try {
    if (client.isOpen) await client.close();
  } catch {
    client.destroy();
  }
}
