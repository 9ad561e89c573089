import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignJWT } from 'jose';
import { createTestApp, TEST_JWT_SECRET, type TestApp } from '../helpers/test-app.js';
import { secretKey } from '../../src/modules/auth/auth.js';
import { encodePaymentCursor } from '../../src/core/pagination.js';

/**
 * Bad input, tried against a production-mode server: every case gets the status and the coded error
 * it should, nothing internal (SQL, stack, driver text, field suggestions) reaches the client, and
 * the database is exactly as it was. The table's requests accept `application/json` (no Accept header),
 * for which GraphQL over HTTP answers a request that cannot run (parse, validation, variables) with 200
 * and its errors; the limits below accept `application/graphql-response+json`, which keeps the 4xx.
 */
let t: TestApp;
let admin: string;
let user2: string;
let expired: string;
let wrongSecret: string;

beforeAll(async () => {
  t = await createTestApp({ seed: { users: 4, paymentsPerUser: 3 }, env: { NODE_ENV: 'production', SINGLE_INSTANCE: 'true', DEBUG_SQL: 'false', METRICS_TOKEN: 'bad-inputs-metrics-token' } });
  admin = await t.adminToken();
  user2 = await t.userToken(2);
  const key = secretKey(TEST_JWT_SECRET);
  expired = await new SignJWT({ role: 'ADMIN' }).setProtectedHeader({ alg: 'HS256' }).setSubject('1').setExpirationTime(Math.floor(Date.now() / 1000) - 10).sign(key);
  wrongSecret = await new SignJWT({ role: 'ADMIN' }).setProtectedHeader({ alg: 'HS256' }).setSubject('1').setExpirationTime('1h').sign(secretKey('x'.repeat(40)));
});
afterAll(async () => t?.close());

interface Case {
  name: string;
  /** A GraphQL document (sent as JSON) or a raw request. */
  query?: string;
  variables?: Record<string, unknown>;
  raw?: { method?: 'GET' | 'POST'; url?: string; headers?: Record<string, string>; payload?: string };
  token?: () => string;
  status: number;
  code: string;
  /** The refusing mechanism's own words: a limit case must be refused by that limit, not by another rule. */
  message?: RegExp;
}

/** A valid query whose deepest field is at `levels` (me = 1): me payments nodes user payments nodes user ... */
export function chain(levels: number): string {
  const names = ['payments(first: 1)', 'nodes', 'user'];
  const leaf = ['totalCount', 'id', 'id'][(levels - 3) % 3]!;
  let open = '';
  let close = '';
  for (let i = 0; i < levels - 2; i++) {
    open += `${names[i % 3]} { `;
    close += ' }';
  }
  return `{ me { ${open}${leaf}${close} } }`;
}

/** A valid query with `n` directives, two per field (@include and @skip may stand on one field together). */
export function directives(n: number): string {
  const userFields = ['id', 'email', 'name', 'role', 'isActive', 'createdAt', 'paymentCount', '__typename'];
  const paymentFields = ['id', 'amount', 'currency', 'status', 'description', 'amountRefunded', 'createdAt', '__typename'];
  const on = (fields: string[], count: number) =>
    fields.slice(0, Math.ceil(count / 2)).map((f, i) => `${f} @include(if: true)${2 * i + 1 < count ? ' @skip(if: false)' : ''}`);
  const mine = Math.min(n, 2 * userFields.length);
  const rest = n - mine;
  return `{ me { ${on(userFields, mine).join(' ')} }${rest > 0 ? ` paymentHistory(first: 1) { nodes { ${on(paymentFields, rest).join(' ')} } }` : ''} }`;
}

/** `count` operations `query Q<i> { me { id } }` (8 tokens each), the first one to run: many tokens, all valid. */
export function operations(count: number, extraField = false): { query: string; operationName: string } {
  const ops = Array.from({ length: count }, (_, i) => `query Q${i} { me { id${extraField && i === count - 1 ? ' email' : ''} } }`);
  return { query: ops.join('\n'), operationName: 'Q0' };
}

const cases: Case[] = [
  { name: 'malformed JSON', raw: { headers: { 'content-type': 'application/json' }, payload: '{"query": "{ me { id } }"' }, status: 400, code: 'BAD_REQUEST' },
  { name: 'a text/plain body (blocked as CSRF)', raw: { headers: { 'content-type': 'text/plain' }, payload: '{ me { id } }' }, status: 400, code: 'BAD_REQUEST' },
  { name: 'an unsupported content type', raw: { headers: { 'content-type': 'application/xml' }, payload: '<query/>' }, status: 415, code: 'BAD_REQUEST' },
  { name: 'GET without a CSRF preflight header', raw: { method: 'GET', url: '/graphql?query=%7B__typename%7D', headers: {} }, status: 400, code: 'BAD_REQUEST' },
  { name: 'a body over 100 KB', query: `{ me { id } } # ${'x'.repeat(110 * 1024)}`, status: 413, code: 'BAD_REQUEST', message: /^Request body is too large$/ },
  { name: 'an empty body', raw: { headers: { 'content-type': 'application/json' }, payload: '' }, status: 400, code: 'BAD_REQUEST' },
  { name: 'no query', raw: { headers: { 'content-type': 'application/json' }, payload: '{"variables": {}}' }, status: 400, code: 'BAD_REQUEST' },
  { name: 'a query that is not a string', raw: { headers: { 'content-type': 'application/json' }, payload: '{"query": 42}' }, status: 400, code: 'BAD_REQUEST' },
  { name: 'a batched (array) request', raw: { headers: { 'content-type': 'application/json' }, payload: '[{"query":"{ me { id } }"},{"query":"{ me { id } }"}]' }, status: 400, code: 'BAD_REQUEST', message: /^Batched requests are not accepted$/ },
  { name: 'a syntax error', query: '{ me { id }', status: 200, code: 'GRAPHQL_PARSE_FAILED', message: /^Syntax Error: Expected Name, found <EOF>\.$/ },
  { name: 'a query nested deeper than 8', query: chain(9), token: () => admin, status: 200, code: 'GRAPHQL_VALIDATION_FAILED', message: /^Syntax Error: Query depth limit of 8 exceeded, found 9\.$/ },
  { name: 'an alias bomb (200 aliases)', query: `{ ${Array.from({ length: 200 }, (_, i) => `a${i}: me { id }`).join(' ')} }`, token: () => admin, status: 200, code: 'GRAPHQL_VALIDATION_FAILED', message: /^Syntax Error: Aliases limit of 15 exceeded, found 200\.$/ },
  { name: 'too many tokens (2,500 fields)', query: `{ me { ${Array.from({ length: 2500 }, () => 'id').join(' ')} } }`, token: () => admin, status: 200, code: 'GRAPHQL_PARSE_FAILED', message: /^Syntax Error: Document contains more that 2000 tokens\. Parsing aborted\.$/ },
  { name: 'too many directives', query: directives(21), token: () => admin, status: 200, code: 'GRAPHQL_VALIDATION_FAILED', message: /^Syntax Error: Directives limit of 20 exceeded, found 21\.$/ },
  { name: 'a cost over the limit (lists multiplied by first), well within the depth limit', query: '{ users(first: 100) { nodes { payments(first: 100) { nodes { id amount status } } } } }', token: () => admin, status: 200, code: 'GRAPHQL_VALIDATION_FAILED', message: /^Query is too expensive: cost 40201 is over the limit of 20000/ },
  { name: 'an unknown field (no suggestion)', query: '{ me { emial } }', token: () => admin, status: 200, code: 'GRAPHQL_VALIDATION_FAILED', message: /^Cannot query field "emial" on type "User"\.( \[Suggestion hidden\]\?)?$/ },
  { name: 'introspection in production', query: '{ __schema { types { name } } }', token: () => admin, status: 200, code: 'GRAPHQL_VALIDATION_FAILED', message: /^GraphQL introspection is not allowed/ },
  { name: 'a wrong enum value', query: '{ paymentHistory(status: DONE) { nodes { id } } }', token: () => user2, status: 200, code: 'GRAPHQL_VALIDATION_FAILED', message: /^Value "DONE" does not exist in "PaymentStatus" enum\.$/ },
  { name: 'an Int out of range', query: '{ users(first: 2147483648) { nodes { id } } }', token: () => admin, status: 200, code: 'GRAPHQL_VALIDATION_FAILED', message: /^Int cannot represent non 32-bit signed integer value: 2147483648$/ },
  { name: 'a variable of the wrong type', query: 'query($f: Int) { users(first: $f) { nodes { id } } }', variables: { f: 'ten' }, token: () => admin, status: 200, code: 'BAD_USER_INPUT', message: /^Variable "\$f" got invalid value "ten"; Int cannot represent non-integer value: "ten"$/ },
  { name: 'a missing required variable', query: 'query($id: ID!) { user(id: $id) { id } }', variables: {}, token: () => admin, status: 200, code: 'BAD_USER_INPUT', message: /^Variable "\$id" of required type "ID!" was not provided\.$/ },
  { name: 'an unknown operationName', raw: { headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ query: 'query A { me { id } }', operationName: 'B' }) }, status: 400, code: 'OPERATION_RESOLUTION_FAILURE', message: /^Unknown operation named "B"\.$/ },
  { name: 'an invalid ID', query: '{ user(id: "abc") { id } }', token: () => admin, status: 200, code: 'BAD_USER_INPUT' },
  { name: 'a SQL-looking ID', query: `{ payment(id: "1; drop table payments") { id } }`, token: () => admin, status: 200, code: 'BAD_USER_INPUT' },
  { name: 'an invalid cursor', query: '{ users(after: "not-a-cursor") { nodes { id } } }', token: () => admin, status: 200, code: 'BAD_USER_INPUT' },
  { name: 'a payment cursor for users', query: `{ users(after: "${encodePaymentCursor({ createdAt: Date.now(), id: 1 })}") { nodes { id } } }`, token: () => admin, status: 200, code: 'BAD_USER_INPUT' },
  { name: 'a cursor of emoji', query: '{ paymentHistory(after: "🙂🙂🙂") { nodes { id } } }', token: () => user2, status: 200, code: 'BAD_USER_INPUT' },
  { name: 'a negative first', query: '{ users(first: -5) { nodes { id } } }', token: () => admin, status: 200, code: 'BAD_USER_INPUT', message: /^"first" must be an integer from 1 to 100, got -5$/ },
  { name: 'a huge first', query: '{ users(first: 1000) { nodes { id } } }', token: () => admin, status: 200, code: 'BAD_USER_INPUT', message: /^"first" must be an integer from 1 to 100, got 1000$/ },
  { name: 'a NUL byte in a filter', query: 'query($e: String) { users(filter: { emailContains: $e }) { nodes { id } } }', variables: { e: 'a\u0000b' }, token: () => admin, status: 200, code: 'BAD_USER_INPUT' },
  { name: 'a filter string over 320 characters', query: `{ users(filter: { emailContains: "${'a'.repeat(321)}" }) { nodes { id } } }`, token: () => admin, status: 200, code: 'BAD_USER_INPUT', message: /emailContains must be at most 320 characters/ },
  { name: 'an invalid email in createUser', query: 'mutation { createUser(input: { email: "nope", name: "X" }) { id } }', token: () => admin, status: 200, code: 'BAD_USER_INPUT' },
  { name: 'a SQL-looking email in createUser', query: `mutation { createUser(input: { email: "x'); delete from users; --@a.b", name: "X" }) { id } }`, token: () => admin, status: 200, code: 'BAD_USER_INPUT' },
  { name: 'createPayment while payments are not configured', query: 'mutation { createPayment(input: { amount: 100, currency: "usd", idempotencyKey: "key-123456" }) { clientSecret } }', token: () => user2, status: 200, code: 'PAYMENTS_NOT_CONFIGURED' },
  { name: 'no token', query: '{ users { nodes { id } } }', status: 200, code: 'UNAUTHENTICATED' },
  { name: 'a garbled token', query: '{ me { id } }', token: () => 'garbage.token.here', status: 401, code: 'UNAUTHENTICATED' },
  { name: 'an expired token', query: '{ me { id } }', token: () => expired, status: 401, code: 'UNAUTHENTICATED' },
  { name: 'a token signed with another secret', query: '{ me { id } }', token: () => wrongSecret, status: 401, code: 'UNAUTHENTICATED' },
  { name: "a USER asking for the admin's list", query: '{ users { nodes { id } } }', token: () => user2, status: 200, code: 'FORBIDDEN' },
  { name: "a USER asking for another user's payment", query: '{ payment(id: "7") { id } }', token: () => user2, status: 200, code: 'NOT_FOUND' },
];

/** What must never reach a client: SQL, stacks, file paths, driver messages, schema hints. */
const LEAK = /\bselect\b|\binsert into\b|\bfrom "|stacktrace|node_modules|\.ts:\d+|\bat [\w.<>]+ \(|duplicate key|violates|syntax error at or near|Did you mean/i;

async function snapshot(): Promise<unknown> {
  return t.sql(`select (select md5(coalesce(string_agg(u::text, '|' order by u.id), '')) from users u) as users,
                       (select md5(coalesce(string_agg(p::text, '|' order by p.id), '')) from payments p) as payments`);
}

describe('bad input', () => {
  it('has at least 30 cases', () => {
    expect(cases.length).toBeGreaterThanOrEqual(30);
  });

  it.each(cases)('$name -> $status $code', async (c) => {
    const before = await snapshot();
    const res = await t.app.fastify.inject({
      method: c.raw?.method ?? 'POST',
      url: c.raw?.url ?? '/graphql',
      headers: {
        ...(c.raw ? {} : { 'content-type': 'application/json' }),
        ...(c.token ? { authorization: `Bearer ${c.token()}` } : {}),
        ...c.raw?.headers,
      },
      payload: c.raw ? c.raw.payload : JSON.stringify({ query: c.query, variables: c.variables }),
    });
    const text = res.body;
    const body = JSON.parse(text) as { errors?: { message: string; extensions?: { code?: string } }[] };
    expect(res.statusCode).toBe(c.status);
    expect(body.errors?.map((e) => e.extensions?.code)).toContain(c.code);
    if (c.message) expect(body.errors?.map((e) => e.message)).toContainEqual(expect.stringMatching(c.message));
    expect(text).not.toMatch(LEAK);
    expect(await snapshot()).toEqual(before);
  });

  it('treats SQL in a filter as text: no match, no error, nothing changed', async () => {
    const before = await snapshot();
    const r = await t.gql(`{ users(filter: { emailContains: "' or 1=1; drop table users; --" }) { nodes { id } } }`, { token: admin });
    expect(r.body).toMatchObject({ data: { users: { nodes: [] } } });
    expect(r.body.errors).toBeUndefined();
    expect(await snapshot()).toEqual(before);
  });
});

/**
 * Each limit at its value passes and one past it is refused by that limit (its own message): the
 * refusal cases above are not refused by something else, and the limits are not off by one.
 */
describe('limits, at and just past each one', () => {
  const post = (body: unknown) =>
    t.app.fastify.inject({
      method: 'POST',
      url: '/graphql',
      headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json', authorization: `Bearer ${admin}` },
      payload: JSON.stringify(body),
    });
  const ok = async (body: unknown) => {
    const res = await post(body);
    expect(res.json().errors, res.body.slice(0, 300)).toBeUndefined();
    expect(res.statusCode).toBe(200);
  };
  const refused = async (body: unknown, status: number, code: string, message: RegExp) => {
    const res = await post(body);
    expect(res.statusCode).toBe(status);
    expect(res.json().errors).toContainEqual(expect.objectContaining({ message: expect.stringMatching(message), extensions: expect.objectContaining({ code }) }));
  };

  it('tokens: exactly 2,000 pass, 2,001 are refused while parsing', async () => {
    await ok(operations(250));
    await refused(operations(250, true), 400, 'GRAPHQL_PARSE_FAILED', /^Syntax Error: Document contains more that 2000 tokens\. Parsing aborted\.$/);
  });

  it('depth: 8 passes, 9 is refused', async () => {
    await ok({ query: chain(8) });
    await refused({ query: chain(9) }, 400, 'GRAPHQL_VALIDATION_FAILED', /^Syntax Error: Query depth limit of 8 exceeded, found 9\.$/);
  });

  it('aliases: 15 pass, 16 are refused', async () => {
    const aliases = (n: number) => `{ ${Array.from({ length: n }, (_, i) => `a${i}: me { id }`).join(' ')} }`;
    await ok({ query: aliases(15) });
    await refused({ query: aliases(16) }, 400, 'GRAPHQL_VALIDATION_FAILED', /^Syntax Error: Aliases limit of 15 exceeded, found 16\.$/);
  });

  it('directives: 20 pass, 21 are refused', async () => {
    await ok({ query: directives(20) });
    await refused({ query: directives(21) }, 400, 'GRAPHQL_VALIDATION_FAILED', /^Syntax Error: Directives limit of 20 exceeded, found 21\.$/);
  });

  it('cost: 19,801 passes, 20,201 is refused with the cost in its extensions', async () => {
    const cost = (first: number) => `{ users(first: 100) { nodes { payments(first: ${first}) { nodes { id amount status } } } } }`;
    await ok({ query: cost(49) });
    const res = await post({ query: cost(50) });
    expect(res.statusCode).toBe(400);
    expect(res.json().errors[0]).toMatchObject({
      message: expect.stringMatching(/^Query is too expensive: cost 20201 is over the limit of 20000/),
      extensions: { code: 'GRAPHQL_VALIDATION_FAILED', cost: 20201, maxCost: 20000 },
    });
  });

  it('first: 100 passes, 101 is refused', async () => {
    await ok({ query: '{ users(first: 100) { nodes { id } } }' });
    await refused({ query: '{ users(first: 101) { nodes { id } } }' }, 200, 'BAD_USER_INPUT', /^"first" must be an integer from 1 to 100, got 101$/);
  });

  it('filter text: 320 characters pass, 321 are refused', async () => {
    await ok({ query: `{ users(filter: { emailContains: "${'a'.repeat(320)}" }) { nodes { id } } }` });
    await refused({ query: `{ users(filter: { emailContains: "${'a'.repeat(321)}" }) { nodes { id } } }` }, 200, 'BAD_USER_INPUT', /emailContains must be at most 320 characters/);
  });

  it('body: 100 KB pass, one byte more is refused', async () => {
    const sized = (bytes: number) => {
      const base = JSON.stringify({ query: '{ me { id } } # ' });
      return JSON.stringify({ query: `{ me { id } } # ${'x'.repeat(bytes - base.length)}` });
    };
    const send = (payload: string) =>
      t.app.fastify.inject({ method: 'POST', url: '/graphql', headers: { 'content-type': 'application/json', authorization: `Bearer ${admin}` }, payload });
    expect(Buffer.byteLength(sized(100 * 1024))).toBe(100 * 1024);
    const atLimit = await send(sized(100 * 1024));
    expect(atLimit.statusCode).toBe(200);
    expect(atLimit.json().data.me).toEqual({ id: '1' });
    const over = await send(sized(100 * 1024 + 1));
    expect(over.statusCode).toBe(413);
    expect(over.json().errors[0]).toMatchObject({ message: 'Request body is too large', extensions: { code: 'BAD_REQUEST' } });
  });
});

describe('batch limit, when batching is allowed', () => {
  let batched: TestApp;
  beforeAll(async () => {
    batched = await createTestApp({ seed: { users: 2, paymentsPerUser: 1 }, env: { NODE_ENV: 'production', SINGLE_INSTANCE: 'true', DEBUG_SQL: 'false', METRICS_PUBLIC: 'true', GRAPHQL_BATCH_MAX: '2' } });
  });
  afterAll(async () => batched?.close());

  it('2 operations pass, 3 are refused', async () => {
    const send = async (n: number) =>
      batched.app.fastify.inject({
        method: 'POST',
        url: '/graphql',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${await batched.adminToken()}` },
        payload: JSON.stringify(Array.from({ length: n }, () => ({ query: '{ me { id } }' }))),
      });
    const two = await send(2);
    expect(two.statusCode).toBe(200);
    // Each operation is its own: its data, and its own cost taken from the budget (see limits.test.ts).
    expect(two.json().map((r: { data: unknown }) => r.data)).toEqual([{ me: { id: '1' } }, { me: { id: '1' } }]);
    expect(two.json().map((r: { extensions: { cost: { actualQueryCost: number } } }) => r.extensions.cost.actualQueryCost)).toEqual([2, 2]);
    const three = await send(3);
    expect(three.statusCode).toBe(400);
    expect(three.json().errors[0]).toMatchObject({ message: 'At most 2 operations per batch', extensions: { code: 'BAD_REQUEST' } });
  });
});
