import { describe, expect, it } from 'vitest';
import { MikroORM } from '@mikro-orm/postgresql';
import { cacheKey, deserialize, serialize } from '../../src/core/cache/index.js';
import { ormOptions } from '../../src/db/orm.js';

describe('cacheKey', () => {
  it('gives the same key for the same arguments in another key order', () => {
    expect(cacheKey({ a: 1, b: { c: [1, 2], d: 'x' } }, 5)).toBe(cacheKey({ b: { d: 'x', c: [1, 2] }, a: 1 }, 5));
  });

  it('gives different keys for different arguments', () => {
    const keys = [cacheKey(1), cacheKey('1'), cacheKey(2), cacheKey(1, null), cacheKey([1, 2]), cacheKey([2, 1]), cacheKey({ a: 1 }), cacheKey({ a: '1' }), cacheKey(new Date(0)), cacheKey(new Date(1))];
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('keeps short arguments as they are and hashes long ones, never confusing the two', () => {
    expect(cacheKey(7)).toBe('[7]');
    const long = 'x'.repeat(100);
    expect(cacheKey(long)).toMatch(/^#[\w-]{27}$/);
    expect(cacheKey(long)).not.toBe(cacheKey(`${long}y`));
    // A string argument that looks like a hashed key is still its own (quoted) text.
    expect(cacheKey(cacheKey(long))).not.toBe(cacheKey(long));
  });

  it('leaves entity managers and contexts out of the key', async () => {
    const orm = await MikroORM.init({ ...ormOptions({ databaseUrl: 'postgresql://127.0.0.1:1/none' }), connect: false });
    const em = orm.em.fork();
    expect(cacheKey(em, 7)).toBe(cacheKey(7));
    expect(cacheKey({ em, viewer: null }, 7)).toBe(cacheKey(7));
    await orm.close();
  });
});

describe('serialize', () => {
  it('round-trips Dates, nested, and plain JSON values', () => {
    const value = { at: new Date('2026-01-02T03:04:05.678Z'), list: [new Date(0), 1, 'a', null], nested: { ok: true } };
    const back = deserialize<typeof value>(serialize(value));
    expect(back).toEqual(value);
    expect(back.at).toBeInstanceOf(Date);
    expect(back.list[0]).toBeInstanceOf(Date);
  });
});
