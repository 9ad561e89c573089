import { BadUserInputError } from './errors.js';

export const DEFAULT_PAGE_SIZE = 20;
export const MAX_PAGE_SIZE = 100;

/** `first` must be 1..100; anything else is the client's mistake, said plainly. */
export function assertPageSize(first: number | null): number {
  if (first === null || !Number.isInteger(first) || first < 1 || first > MAX_PAGE_SIZE) {
    throw new BadUserInputError(`"first" must be an integer from 1 to ${MAX_PAGE_SIZE}, got ${first}`, {
      argumentName: 'first',
    });
  }
  return first;
}

/** Position of a payment in "newest first" order: (createdAt desc, id desc). */
export interface PaymentCursor {
  createdAtMs: number;
  id: number;
}

// Cursors are opaque to clients: base64url of a tagged, versionless text. The tag keeps a user
// cursor from being accepted where a payment cursor is expected.
const encode = (text: string): string => Buffer.from(text, 'utf8').toString('base64url');

function decode(cursor: string, tag: string): string[] {
  const parts = Buffer.from(cursor, 'base64url').toString('utf8').split(':');
  if (parts[0] !== tag) throw invalidCursor();
  return parts.slice(1);
}

function invalidCursor(): BadUserInputError {
  return new BadUserInputError('"after" is not a valid cursor for this list', { argumentName: 'after' });
}

function positiveInt(text: string | undefined): number {
  if (!text || !/^[1-9]\d{0,9}$/.test(text)) throw invalidCursor();
  const n = Number(text);
  if (n > 2147483647) throw invalidCursor();
  return n;
}

/** `createdAt` in epoch milliseconds, as rows carry it. */
export function encodePaymentCursor(row: { createdAt: number; id: number }): string {
  return encode(`p:${row.createdAt}:${row.id}`);
}

export function decodePaymentCursor(cursor: string): PaymentCursor {
  const [ms, id, ...rest] = decode(cursor, 'p');
  if (rest.length > 0 || !ms || !/^\d{1,15}$/.test(ms)) throw invalidCursor();
  return { createdAtMs: Number(ms), id: positiveInt(id) };
}

export function encodeUserCursor(row: { id: number }): string {
  return encode(`u:${row.id}`);
}

export function decodeUserCursor(cursor: string): number {
  const [id, ...rest] = decode(cursor, 'u');
  if (rest.length > 0) throw invalidCursor();
  return positiveInt(id);
}

/** The integer key an `ID` names, or null when it cannot be one of ours (a positive int4). */
export function idOrNull(id: unknown): number | null {
  return typeof id === 'string' && /^[1-9]\d{0,9}$/.test(id) && Number(id) <= 2147483647 ? Number(id) : null;
}

/** Parses a GraphQL `ID` argument that names a row by its integer key. */
export function parseId(id: string, what = 'id'): number {
  const parsed = idOrNull(id);
  if (parsed === null) {
    throw new BadUserInputError(`"${what}" must be a positive integer id, got ${JSON.stringify(id)}`, {
      argumentName: what,
    });
  }
  return parsed;
}
