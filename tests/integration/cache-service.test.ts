import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { CacheService, QueryCache } from '../../src/core/cache/index.js';
import { UNKNOWN_POSITION, versionPosition } from '../../src/core/cache/cache.service.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { RedisProcess } from '../helpers/redis-server.js';
import { createClient } from '@keyv/redis';

const redisUrl = inject('redisUrl');
const STORES = [
  { name: 'memory', redisUrl: undefined as string | undefined },
  { name: 'Redis', redisUrl: redisUrl || undefined },
];

const open: CacheService[] = [];
afterEach(async () => {
  while (open.length) {
    const s = open.pop()!;
    // Leave nothing behind in a shared Redis (best effort: some tests make the store unreachable).
    await s.clear().catch(() => undefined);
    await s.close();
  }
});

function service(redis: string | undefined, namespace = `t${randomBytes(4).toString('hex')}`): CacheService {
  const s = CacheService.create({ redisUrl: redis, namespace, defaultTtlSeconds: 60, timeoutMs: 500 });
  open.push(s);
  return s;
}

async function ready(s: CacheService): Promise<CacheService> {
  expect(await s.ready()).toBe(true);
  return s;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Rejections that no handler took while `run` ran (and a few turns after it): on Node each of them
 * would end a server process.
 */
async function unhandledDuring(run: () => Promise<void>): Promise<unknown[]> {
  const seen: unknown[] = [];
  const listener = (reason: unknown) => seen.push(reason);
  process.on('unhandledRejection', listener);
  try {
    await run();
    await sleep(50);
  } finally {
    process.off('unhandledRejection', listener);
  }
  return seen;
}

describe.each(STORES)('the cache on $name', ({ name, redisUrl: url }) => {
  // CI always has Redis (global setup fails without it); only a bare dev machine skips this variant.
  const skip = name === 'Redis' && !url;

  it.skipIf(skip)('keeps exact stats over a scripted sequence of hits, misses and sets', async () => {
    const shared = await ready(service(url));
    let loads = 0;
    const load = async () => ({ n: ++loads });
    const a = new QueryCache(shared, { enabled: true });
    expect(await a.getOrLoad('k', [1], {}, load)).toEqual({ n: 1 }); // miss, set
    expect(await a.getOrLoad('k', [1], {}, load)).toEqual({ n: 1 }); // L1 hit
    expect(await a.getOrLoad('k', [2], {}, load)).toEqual({ n: 2 }); // miss, set
    expect(a.getStats()).toEqual({ hits: 1, misses: 2, sets: 2, errors: 0, l1: { hits: 1 }, shared: { hits: 0, misses: 2, sets: 2, errors: 0 } });

    const b = new QueryCache(shared, { enabled: true });
    expect(await b.getOrLoad('k', [1], {}, load)).toEqual({ n: 1 }); // shared hit
    expect(await b.getOrLoad('k', [3], {}, async () => null)).toBeNull(); // miss, null is not stored
    expect(await b.getOrLoad('k', [3], {}, async () => null)).toBeNull(); // L1 hit
    expect(b.getStats()).toEqual({ hits: 2, misses: 1, sets: 0, errors: 0, l1: { hits: 1 }, shared: { hits: 1, misses: 1, sets: 0, errors: 0 } });
    expect(loads).toBe(2);
    expect(shared.totals).toEqual({ hits: 1, misses: 3, sets: 2, errors: 0 });
  });

  it.skipIf(skip)('expires entries after their TTL', async () => {
    const shared = await ready(service(url));
    let loads = 0;
    const spec = { ttl: 0.3 };
    await new QueryCache(shared, { enabled: true }).getOrLoad('ttl', [1], spec, async () => ++loads);
    expect(await new QueryCache(shared, { enabled: true }).getOrLoad('ttl', [1], spec, async () => ++loads)).toBe(1);
    await sleep(450);
    expect(await new QueryCache(shared, { enabled: true }).getOrLoad('ttl', [1], spec, async () => ++loads)).toBe(2);
  });

  it.skipIf(skip)('invalidates by tag: entries carrying the tag miss, others still hit', async () => {
    const shared = await ready(service(url));
    const read = (id: number, value: string) =>
      new QueryCache(shared, { enabled: true }).getOrLoad('user', [id], { tags: ([i]) => [`user:${i}`] }, async () => value);
    await read(1, 'one');
    await read(2, 'two');
    await new QueryCache(shared, { enabled: true }).invalidate(['user:1']);
    expect(await read(1, 'ONE')).toBe('ONE');
    expect(await read(2, 'TWO')).toBe('two');
  });

  it.skipIf(skip)('runs the loader once for 50 concurrent misses of one key (single flight)', async () => {
    const shared = await ready(service(url));
    let loads = 0;
    const results = await Promise.all(
      Array.from({ length: 50 }, () =>
        new QueryCache(shared, { enabled: true }).getOrLoad('hot', [1], { tags: () => ['hot'] }, async () => {
          loads++;
          await sleep(30);
          return 'value';
        }),
      ),
    );
    expect(results).toEqual(Array(50).fill('value'));
    expect(loads).toBe(1);
  });

  describe('single flight when a load fails', () => {
    const spec = { tags: ([i]: readonly [number]) => [`sf:${i}`] };
    /** A load that waits for `settle`, and says when it has started (its flights are then registered). */
    function gatedLoad(values: (missing: (readonly [number])[]) => string[]) {
      let started!: () => void;
      let settle!: (outcome: Error | null) => void;
      const hasStarted = new Promise<void>((r) => (started = r));
      const outcome = new Promise<Error | null>((r) => (settle = r));
      const load = async (missing: (readonly [number])[]) => {
        started();
        const error = await outcome;
        if (error) throw error;
        return values(missing);
      };
      return { load, hasStarted, settle };
    }

    it.skipIf(skip)('a failed flight fails only the keys that joined it; the joiner\'s own keys are answered', async () => {
      const shared = await ready(service(url));
      const seen = await unhandledDuring(async () => {
        const a = gatedLoad((m) => m.map(([i]) => `a${i}`));
        const first = new QueryCache(shared, { enabled: true }).getOrLoadMany('sf', [[1], [2]], spec, a.load);
        await a.hasStarted;
        // Joins the flight of key 2, and loads key 3 itself (its own load starts once it has joined).
        let ownLoads: number[] = [];
        let decided!: () => void;
        const joined = new Promise<void>((r) => (decided = r));
        const second = new QueryCache(shared, { enabled: true }).getOrLoadMany('sf', [[2], [3]], spec, async (missing) => {
          ownLoads = missing.map(([i]) => i);
          decided();
          return missing.map(([i]) => `b${i}`);
        });
        await joined;
        a.settle(new Error('canceling statement due to statement timeout'));
        const [firstResults, secondResults] = await Promise.all([first, second]);
        expect(ownLoads).toEqual([3]);
        expect(firstResults.map((r) => (r instanceof Error ? r.message : r))).toEqual([
          'canceling statement due to statement timeout',
          'canceling statement due to statement timeout',
        ]);
        expect(secondResults.map((r) => (r instanceof Error ? r.message : r))).toEqual(['canceling statement due to statement timeout', 'b3']);
      });
      expect(seen).toEqual([]);
    });

    it.skipIf(skip)('an own load that fails beside a joined flight that fails leaves no rejection unhandled', async () => {
      const shared = await ready(service(url));
      const seen = await unhandledDuring(async () => {
        const a = gatedLoad((m) => m.map(([i]) => `a${i}`));
        const first = new QueryCache(shared, { enabled: true }).getOrLoadMany('sf', [[1], [2]], spec, a.load);
        await a.hasStarted;
        let decided!: () => void;
        const joined = new Promise<void>((r) => (decided = r));
        let ownLoads: number[] = [];
        const second = new QueryCache(shared, { enabled: true }).getOrLoadMany('sf', [[2], [3]], spec, async (missing) => {
          ownLoads = missing.map(([i]) => i);
          decided();
          throw new Error('own load failed');
        });
        // The joiner's own load fails first; the flight it joined fails after it.
        await joined;
        await sleep(10);
        a.settle(new Error('joined flight failed'));
        const results = await second;
        expect(ownLoads).toEqual([3]);
        expect(results.map((r) => (r as Error).message)).toEqual(['joined flight failed', 'own load failed']);
        expect((await first).every((r) => r instanceof Error)).toBe(true);
      });
      expect(seen).toEqual([]);
    });

    it.skipIf(skip)('a failed load is not kept: the next request for the same keys loads again', async () => {
      const shared = await ready(service(url));
      const failing = await new QueryCache(shared, { enabled: true }).getOrLoadMany('sf', [[4]], spec, async () => {
        throw new Error('stalled');
      });
      expect(failing[0]).toBeInstanceOf(Error);
      const scope = new QueryCache(shared, { enabled: true });
      expect(await scope.getOrLoad('sf', [4], spec, async () => 'fresh')).toBe('fresh');
      await expect(new QueryCache(shared, { enabled: true }).getOrLoad('sf', [5], spec, async () => Promise.reject(new Error('one key')))).rejects.toThrow('one key');
    });
  });

  it.skipIf(skip)('never lets a mutation of a value change what later reads get', async () => {
    const shared = await ready(service(url));
    const loaded = { rows: [{ id: 1, email: 'a@x' }] };
    const first = await new QueryCache(shared, { enabled: true }).getOrLoad('m', [1], {}, async () => loaded);
    // Redis hands each read a copy; the memory store freezes what it keeps, so a mutation throws.
    const tryMutate = (v: typeof loaded) => {
      try {
        v.rows[0]!.email = 'changed';
        v.rows.push({ id: 2, email: 'b@x' });
      } catch (err) {
        expect(err).toBeInstanceOf(TypeError);
      }
    };
    tryMutate(first);
    const second = await new QueryCache(shared, { enabled: true }).getOrLoad('m', [1], {}, async () => ({ rows: [] }));
    tryMutate(second);
    const third = await new QueryCache(shared, { enabled: true }).getOrLoad('m', [1], {}, async () => ({ rows: [] }));
    expect(third).toEqual({ rows: [{ id: 1, email: 'a@x' }] });
  });

  it.skipIf(skip)('does nothing but load when disabled', async () => {
    const shared = await ready(service(url));
    let loads = 0;
    const scope = new QueryCache(shared, { enabled: false });
    await scope.getOrLoad('off', [1], {}, async () => ++loads);
    await scope.getOrLoad('off', [1], {}, async () => ++loads);
    expect(loads).toBe(2);
    expect(scope.getStats().shared).toEqual({ hits: 0, misses: 0, sets: 0, errors: 0 });
  });
});

describe.each(STORES)('write positions and read-your-writes marks on $name (read replicas)', ({ name, redisUrl: url }) => {
  const skip = name === 'Redis' && !url;
  const withPosition = (writePosition: () => Promise<number>) => {
    const s = CacheService.create({ redisUrl: url, namespace: `p${randomBytes(4).toString('hex')}`, defaultTtlSeconds: 60, timeoutMs: 500, writePosition });
    open.push(s);
    return s;
  };

  it.skipIf(skip)("a write whose WAL position cannot be read carries an unknown position (past every replica), never 0", async () => {
    const failing = await ready(withPosition(async () => Promise.reject(new Error('the primary did not answer'))));
    await failing.invalidate(['w:1']);
    expect(versionPosition((await failing.tagVersions(['w:1']))[0])).toBe(UNKNOWN_POSITION);
    // Just under: a position that could be read is the one carried.
    const known = await ready(withPosition(async () => 4242));
    await known.invalidate(['w:1']);
    expect(versionPosition((await known.tagVersions(['w:1']))[0])).toBe(4242);
  });

  it.skipIf(skip)('a tag version made because none was found carries the primary\'s position now (or unknown), never 0', async () => {
    const shared = await ready(withPosition(async () => 777));
    await new QueryCache(shared, { enabled: true }).getOrLoad('fresh', [1], { tags: () => ['fresh:1'] }, async () => 'v');
    expect(versionPosition((await shared.tagVersions(['fresh:1']))[0])).toBe(777);
    const failing = await ready(withPosition(async () => Promise.reject(new Error('no primary'))));
    await new QueryCache(failing, { enabled: true }).getOrLoad('fresh', [2], { tags: () => ['fresh:2'] }, async () => 'v');
    expect(versionPosition((await failing.tagVersions(['fresh:2']))[0])).toBe(UNKNOWN_POSITION);
  });

  it.skipIf(skip)('an absent mark reads as unknown while the marks may have been lost (a young store), else as 0; a raised one as itself', async () => {
    const shared = await ready(withPosition(async () => 1));
    // The store's marks are new (this process, or a Redis hash just made): nothing proves no write.
    expect(await shared.readMark('lsn:user:9', 60_000)).toBe(UNKNOWN_POSITION);
    await sleep(30);
    // Older than the marks' lifetime: an absent mark is no write in that time.
    expect(await shared.readMark('lsn:user:9', 10)).toBe(0);
    await shared.raiseMark('lsn:user:9', 5000, 60_000);
    await shared.raiseMark('lsn:user:9', 3000, 60_000);
    expect(await shared.readMark('lsn:user:9', 10)).toBe(5000);
  });
});

describe.skipIf(!redisUrl)('marks lost in Redis', () => {
  it('a deleted marks hash (eviction, FLUSHALL, a Redis restarted empty) makes absent marks unknown again', async () => {
    const namespace = `m${randomBytes(4).toString('hex')}`;
    const s = CacheService.create({ redisUrl, namespace, defaultTtlSeconds: 60, timeoutMs: 500, writePosition: async () => 1 });
    open.push(s);
    await ready(s);
    await s.raiseMark('lsn:user:1', 10, 60_000);
    await sleep(30);
    expect(await s.readMark('lsn:user:2', 10)).toBe(0);
    const { createClient } = await import('@keyv/redis');
    const client = createClient({ url: redisUrl });
    await client.connect();
    await client.del([`${namespace}:marks`, `${namespace}:marks:at`]);
    await client.close();
    expect(await s.readMark('lsn:user:2', 60_000)).toBe(UNKNOWN_POSITION);
    // And the lost mark of the viewer who wrote is unknown too, not 0.
    expect(await s.readMark('lsn:user:1', 60_000)).toBe(UNKNOWN_POSITION);
  });
});

// Values cross Redis as text: a Date must come back a Date (in memory a value is never serialised).
describe.skipIf(!redisUrl)('clearing a namespace on Redis', () => {
  it('is not bound by the per-read timeout: a Redis holding many other keys is scanned to the end', async () => {
    // A private Redis with 400,000 keys of nobody's: clear() SCANs the whole keyspace for its
    // namespace, hundreds of round trips, far past a read's 100 ms (the test suite's shared Redis
    // made CI fail this way under load).
    const redis = await RedisProcess.start(undefined, ['--enable-debug-command', 'yes']);
    const admin = createClient({ url: redis.url });
    try {
      await admin.connect();
      await admin.sendCommand(['DEBUG', 'POPULATE', '400000', 'other']);
      const s = CacheService.create({ redisUrl: redis.url, namespace: 'mine', defaultTtlSeconds: 60, timeoutMs: 100 });
      open.push(s);
      await ready(s);
      await new QueryCache(s, { enabled: true }).getOrLoad('k', [1], {}, async () => ({ n: 1 }));
      expect(await admin.keys('mine:*')).not.toHaveLength(0);
      const started = Date.now();
      await s.clear();
      // Took longer than a read may (so the read's bound would have failed it), and left none of its keys.
      expect(Date.now() - started).toBeGreaterThan(100);
      expect(await admin.keys('mine:q:*')).toEqual([]);
      expect(await admin.dbSize()).toBeGreaterThanOrEqual(400_000);
    } finally {
      await admin.quit().catch(() => undefined);
      await redis.stop();
    }
  }, 60_000);
});

describe.skipIf(!redisUrl)('values through Redis', () => {
  it('keeps Dates as Dates', async () => {
    const shared = await ready(service(redisUrl));
    const at = new Date('2026-05-06T07:08:09.123Z');
    await new QueryCache(shared, { enabled: true }).getOrLoad('d', [1], {}, async () => ({ at }));
    const back = await new QueryCache(shared, { enabled: true }).getOrLoad('d', [1], {}, async () => ({ at: new Date(0) }));
    expect(shared.totals.hits).toBe(1);
    expect(back.at).toBeInstanceOf(Date);
    expect(back.at.getTime()).toBe(at.getTime());
  });
});

const redisPort = redisUrl ? Number(new URL(redisUrl).port || 6379) : 0;

describe.skipIf(!redisUrl)('tag versions under concurrent writes, on Redis', () => {
  const proxies: TcpProxy[] = [];
  afterEach(async () => {
    for (const p of proxies.splice(0)) {
      p.release();
      await p.cut();
    }
  });

  it('a write that bumps a cold tag between a reader\'s read and its create of the version always wins', async () => {
    const namespace = `race${randomBytes(4).toString('hex')}`;
    const proxy = await TcpProxy.start(redisPort);
    proxies.push(proxy);
    const reader = await ready(service(`redis://127.0.0.1:${proxy.port}`, namespace));
    const writer = await ready(service(redisUrl, namespace));
    let database = 'before the write';
    const spec = { tags: () => ['user:7'] };
    const read = (cache: CacheService) => new QueryCache(cache, { enabled: true }).getOrLoad('user', [7], spec, async () => database);

    // The reader finds the tag missing and writes a version for it: hold that write back...
    const held = proxy.holdNext(/\$3\r\nSET\r\n\$\d+\r\n[^\r]*tag:user:7/);
    const first = read(reader);
    await held;
    // ...while the write commits and bumps the tag, then let the reader's write through.
    database = 'after the write';
    await writer.invalidate(['user:7']);
    proxy.release();
    await first;

    expect(await read(writer)).toBe('after the write');
    expect(await read(reader)).toBe('after the write');
  });

  it('an invalidation that could not be written is not served by its instance and lands by itself once Redis is back', async () => {
    const namespace = `replay${randomBytes(4).toString('hex')}`;
    const proxy = await TcpProxy.start(redisPort);
    proxies.push(proxy);
    const writer = await ready(service(`redis://127.0.0.1:${proxy.port}`, namespace));
    const other = await ready(service(redisUrl, namespace));
    let database = 'v1';
    const spec = { tags: () => ['payment:3'] };
    const read = (cache: CacheService) => new QueryCache(cache, { enabled: true }).getOrLoad('payment', [3], spec, async () => database);
    expect(await read(writer)).toBe('v1');

    await proxy.cut();
    database = 'v2';
    await writer.invalidate(['payment:3']);
    expect(writer.pendingInvalidationCount).toBe(1);
    expect(writer.totals.errors).toBeGreaterThan(0);
    // The writing instance never serves the entry from before its own write...
    expect(await read(writer)).toBe('v2');
    // ...another instance may, until the bump lands (the stated guarantee: at most until the TTL).
    expect(await read(other)).toBe('v1');

    await proxy.restore();
    // No further call on the writer: its replay (reconnect, then a timer) writes the bump.
    for (let i = 0; i < 100 && writer.pendingInvalidationCount > 0; i++) await sleep(50);
    expect(writer.pendingInvalidationCount).toBe(0);
    expect(await read(other)).toBe('v2');
  });
});

// A memory store belongs to one instance by definition: sharing is a Redis property.
describe.skipIf(!redisUrl)('two instances on one Redis', () => {
  it('shares entries and invalidations between instances on one store', async () => {
    const namespace = `shared${randomBytes(4).toString('hex')}`;
    const [a, b] = [await ready(service(redisUrl, namespace)), await ready(service(redisUrl, namespace))];
    const spec = { tags: () => ['user:9'] };
    await new QueryCache(a, { enabled: true }).getOrLoad('user', [9], spec, async () => 'v1');
    expect(await new QueryCache(b, { enabled: true }).getOrLoad('user', [9], spec, async () => 'not used')).toBe('v1');
    await new QueryCache(b, { enabled: true }).invalidate(['user:9']);
    expect(await new QueryCache(a, { enabled: true }).getOrLoad('user', [9], spec, async () => 'v2')).toBe('v2');
  });
});

describe('Redis key layout', () => {
  it.skipIf(!redisUrl)('prefixes each key with the namespace exactly once', async () => {
    const namespace = `layout${randomBytes(4).toString('hex')}`;
    const shared = await ready(service(redisUrl, namespace));
    await new QueryCache(shared, { enabled: true }).getOrLoad('user', [1], { tags: () => ['user:1'] }, async () => 'x');
    const { createClient } = await import('@keyv/redis');
    const client = createClient({ url: redisUrl });
    await client.connect();
    const keys = (await client.keys(`*${namespace}*`)).sort();
    await client.close();
    expect(keys).toHaveLength(2);
    for (const key of keys) {
      expect(key.startsWith(`${namespace}::`)).toBe(true);
      expect(key.split(namespace)).toHaveLength(2);
    }
    // Entries carry their build (core/build-id.ts; 'main' when none is given); tag versions do not.
    expect(keys.some((k) => k.startsWith(`${namespace}::q:main:user:`))).toBe(true);
    expect(keys).toContain(`${namespace}::tag:user:1`);
  });
});
