import { describe, expect, it } from 'vitest';
import {
  assertPageSize,
  decodePaymentCursor,
  decodeUserCursor,
  encodePaymentCursor,
  encodeUserCursor,
  parseId,
} from '../../src/core/pagination.js';
import { pgArray } from '../../src/core/sql.js';
import { maskError } from '../../src/core/errors.js';

describe('cursors', () => {
  it('round-trip a payment position to the millisecond', () => {
    const at = Date.parse('2026-02-03T04:05:06.789Z');
    expect(decodePaymentCursor(encodePaymentCursor({ createdAt: at, id: 42 }))).toEqual({ createdAtMs: at, id: 42 });
  });

  it('round-trip a user id', () => {
    expect(decodeUserCursor(encodeUserCursor({ id: 7 }))).toBe(7);
  });

  it.each(['', 'x', Buffer.from('p:abc:1').toString('base64url'), Buffer.from('p:1:0').toString('base64url'), Buffer.from('p:1:2:3').toString('base64url'), encodeUserCursor({ id: 1 })])(
    'rejects %j as a payment cursor with BAD_USER_INPUT',
    (cursor) => {
      expect(() => decodePaymentCursor(cursor)).toThrow(expect.objectContaining({ extensions: expect.objectContaining({ code: 'BAD_USER_INPUT' }) }));
    },
  );

  it('rejects a payment cursor where a user cursor belongs', () => {
    expect(() => decodeUserCursor(encodePaymentCursor({ createdAt: Date.now(), id: 1 }))).toThrow(/cursor/);
  });
});

describe('page size and ids', () => {
  it.each([1, 20, 100])('accepts first = %i', (n) => expect(assertPageSize(n)).toBe(n));
  it.each([0, -5, 101, 2.5, null])('rejects first = %s', (n) => expect(() => assertPageSize(n)).toThrow(/1 to 100/));
  it('parses positive integer ids only', () => {
    expect(parseId('15')).toBe(15);
    for (const bad of ['0', '-1', '01', '1e3', ' 1', '2147483648', 'abc']) expect(() => parseId(bad)).toThrow(/positive integer/);
  });
});

describe('pgArray', () => {
  it('writes numbers, NULLs and escaped strings as one array literal', () => {
    expect(pgArray([1, 2, null, undefined])).toBe('{1,2,NULL,NULL}');
    expect(pgArray(['a', 'b"c', 'd\\e', 'NULL'])).toBe('{"a","b\\"c","d\\\\e","NULL"}');
    expect(pgArray([new Date('2026-01-01T00:00:00.000Z')])).toBe('{"2026-01-01T00:00:00.000Z"}');
    expect(pgArray([])).toBe('{}');
    expect(() => pgArray([NaN])).toThrow(/finite/);
  });
});

describe('maskError', () => {
  const internal = { message: 'select * from users failed: relation does not exist', extensions: { code: 'INTERNAL_SERVER_ERROR', stacktrace: ['at x'] } };
  it('hides internal errors in production, keeping where in the query they happened', () => {
    expect(maskError(internal, true)).toEqual({ message: 'Internal server error', extensions: { code: 'INTERNAL_SERVER_ERROR' } });
    const located = { ...internal, path: ['me', 'x'], locations: [{ line: 1, column: 8 }] };
    expect(maskError(located, true)).toEqual({ message: 'Internal server error', path: ['me', 'x'], locations: [{ line: 1, column: 8 }], extensions: { code: 'INTERNAL_SERVER_ERROR' } });
  });
  it('passes coded user errors through in production, without a stack', () => {
    const user = { message: 'User not found', path: ['user'], extensions: { code: 'NOT_FOUND', stacktrace: ['at y'] } };
    expect(maskError(user, true)).toEqual({ message: 'User not found', path: ['user'], extensions: { code: 'NOT_FOUND' } });
  });
  it('shows everything in development', () => {
    expect(maskError(internal, false)).toBe(internal);
  });
});
