import type Keyv from 'keyv';

/**
 * A plain key-value view of the store under `prefix` (Apollo's `KeyValueCache`, for persisted
 * queries; the response cache's bodies): shared by every instance on Redis, bounded by `guard`, and
 * failing open (an error reads as a miss; a failed write is reported to `fail` and dropped).
 */
export function keyValueView(keyv: Keyv, prefix: string, guard: <T>(operation: Promise<T>) => Promise<T>, fail: (err: unknown) => void) {
  return {
    get: async (key: string): Promise<string | undefined> => {
      try {
        const value = await guard(keyv.get(prefix + key));
        return typeof value === 'string' ? value : undefined;
      } catch (err) {
        fail(err);
        return undefined;
      }
    },
    set: async (key: string, value: string, options?: { ttl?: number | null }): Promise<void> => {
      try {
        await guard(keyv.set(prefix + key, value, options?.ttl ? options.ttl * 1000 : undefined));
      } catch (err) {
        fail(err);
      }
    },
    delete: async (key: string): Promise<boolean> => {
      try {
        return await guard(keyv.delete(prefix + key));
      } catch (err) {
        fail(err);
        return false;
      }
    },
  };
}
