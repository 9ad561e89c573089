import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StripeDouble, stripeEnvFor } from '../helpers/stripe-double.js';

/**
 * Traces end to end, exported over OTLP/HTTP by the OpenTelemetry SDK to a real HTTP receiver in this
 * test: one Q1 is one trace (the W3C traceparent the client sent) holding the HTTP span, the GraphQL
 * operation, the loader batches and exactly its two SQL statements, each under the right parent.
 */
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: { key: string; value: Record<string, unknown> }[];
}
const attr = (span: OtlpSpan, key: string) => {
  const value = span.attributes.find((a) => a.key === key)?.value;
  return value ? Object.values(value)[0] : undefined;
};

let receiver: Server;
const spans: OtlpSpan[] = [];
/** Anything the SDK sent that is not traces (it should send none). */
const receivedElsewhere: string[] = [];
let stripe: StripeDouble;
// Loaded after the SDK starts, so that http and pg are instrumented.
let t: import('../helpers/test-app.js').TestApp;
let tracing: import('../../src/tracing.js').TracingHandle | null;
const logs: Record<string, any>[] = [];

beforeAll(async () => {
  receiver = createServer((req, res) => {
    if (req.url !== '/v1/traces') {
      receivedElsewhere.push(req.url ?? '');
      res.writeHead(404).end();
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { resourceSpans: { scopeSpans: { spans: OtlpSpan[] }[] }[] };
      for (const rs of body.resourceSpans) for (const ss of rs.scopeSpans) spans.push(...ss.spans);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  Object.assign(process.env, {
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(receiver.address() as { port: number }).port}`,
    OTEL_TRACES_SAMPLER: 'always_on',
    OTEL_SERVICE_NAME: 'paygraph-test',
    OTEL_BSP_SCHEDULE_DELAY: '50',
  });
  ({ tracing } = await import('../../src/tracing.js'));
  stripe = await StripeDouble.start();
  const { createTestApp } = await import('../helpers/test-app.js');
  t = await createTestApp({
    seed: { users: 5, paymentsPerUser: 12 },
    env: { ...stripeEnvFor(stripe), LOG_LEVEL: 'info', RECONCILE_INTERVAL_SECONDS: '0' },
    appOptions: { logStream: { write: (line) => void logs.push(JSON.parse(line)) } },
  });
  await t.app.fastify.listen({ host: '127.0.0.1', port: 0 });
});
afterAll(async () => {
  await t?.close();
  await tracing?.shutdown();
  await stripe?.close();
  await new Promise((resolve) => receiver?.close(resolve));
  delete process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
});

async function post(query: string, token: string, traceId: string, variables?: Record<string, unknown>) {
  const url = `http://127.0.0.1:${(t.app.fastify.server.address() as { port: number }).port}/graphql`;
  const parentId = randomBytes(8).toString('hex');
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, traceparent: `00-${traceId}-${parentId}-01` },
    body: JSON.stringify({ query, variables }),
  });
  return { body: (await res.json()) as any, parentId };
}

async function traceOf(traceId: string, until: (spans: OtlpSpan[]) => boolean): Promise<OtlpSpan[]> {
  for (let i = 0; i < 100; i++) {
    await tracing!.flush();
    const mine = spans.filter((s) => s.traceId === traceId);
    if (until(mine)) return mine;
    await new Promise((r) => setTimeout(r, 50));
  }
  return spans.filter((s) => s.traceId === traceId);
}

describe('OpenTelemetry traces', () => {
  it('gives one Q1 one trace: HTTP span, operation, loader batches and its two SQL statements, each under its parent', async () => {
    expect(tracing).not.toBeNull();
    const admin = await t.adminToken();
    await post('{ __typename }', admin, randomBytes(16).toString('hex')); // the viewer's state is cached from here on
    const traceId = randomBytes(16).toString('hex');
    const { body, parentId } = await post('query Q1 { users(first: 5) { nodes { id email payments(first: 10) { nodes { id amount status user { email } } } } } }', admin, traceId);
    expect(body.errors).toBeUndefined();
    const mine = await traceOf(traceId, (s) => s.some((x) => x.name.startsWith('graphql.query')) && s.filter((x) => attr(x, 'db.query.shape')).length >= 2);

    const http = mine.filter((s) => s.kind === 2); // SERVER
    expect(http).toHaveLength(1);
    expect(http[0]!.parentSpanId).toBe(parentId); // the client's traceparent
    const operation = mine.find((s) => s.name === 'graphql.query Q1')!;
    expect(operation).toBeDefined();
    expect(operation.parentSpanId).toBe(http[0]!.spanId);
    expect(attr(operation, 'graphql.operation.name')).toBe('Q1');
    expect(attr(operation, 'graphql.operation.type')).toBe('query');
    expect(String(attr(operation, 'graphql.document.hash'))).toMatch(/^[0-9a-f]{64}$/);

    const sql = mine.filter((s) => attr(s, 'db.query.shape'));
    expect(sql).toHaveLength(2);
    for (const s of sql) {
      expect(attr(s, 'paygraph.db.target')).toBe('primary');
      // No values leave in a span: the text is the shape, literals folded.
      expect(attr(s, 'db.query.text')).toBe(attr(s, 'db.query.shape'));
      expect(String(attr(s, 'db.query.text'))).not.toMatch(/'\{1,2,3,4,5\}'|limit 6/);
    }
    const usersPage = sql.find((s) => String(attr(s, 'db.query.shape')).includes('from users u'))!;
    const paymentsBatch = sql.find((s) => String(attr(s, 'db.query.shape')).includes('cross join lateral'))!;
    expect(usersPage.parentSpanId).toBe(operation.spanId);
    expect(Number(attr(usersPage, 'db.response.returned_rows'))).toBe(5);
    const batch = mine.find((s) => s.spanId === paymentsBatch.parentSpanId)!;
    expect(batch.name).toBe('dataloader.batch paymentsByUserId');
    expect(batch.parentSpanId).toBe(operation.spanId);
    expect(Number(attr(batch, 'paygraph.batch.size'))).toBe(5);
    expect(Number(attr(paymentsBatch, 'db.response.returned_rows'))).toBe(50);

    // The operation's log line carries the trace id.
    const line = logs.find((l) => l.msg === 'graphql operation' && l.operation === 'Q1');
    expect(line?.traceId).toBe(traceId);
  });

  it('exports traces only (metrics and logs have their own channels)', () => {
    expect(receivedElsewhere).toEqual([]);
  });

  it('passes the trace on to Stripe (W3C traceparent on the SDK call)', async () => {
    const traceId = randomBytes(16).toString('hex');
    const { body } = await post(
      'mutation($input: CreatePaymentInput!) { createPayment(input: $input) { payment { id } } }',
      await t.userToken(2),
      traceId,
      { input: { amount: 1500, currency: 'usd', idempotencyKey: `trace-${randomBytes(4).toString('hex')}` } },
    );
    expect(body.errors).toBeUndefined();
    const call = stripe.intentCreations.at(-1)!;
    expect(call.traceparent).toMatch(new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`));
    const mine = await traceOf(traceId, (s) => s.some((x) => x.kind === 3)); // CLIENT
    expect(mine.filter((s) => s.kind === 3).length).toBeGreaterThanOrEqual(1);
  });

  it("continues a federation router's trace through _entities: the operation, the paymentById batch and its one statement", async () => {
    const { createTestApp } = await import('../helpers/test-app.js');
    const subgraph = await createTestApp({ seed: { users: 3, paymentsPerUser: 2 }, env: { GRAPHQL_FEDERATION: 'true' } });
    try {
      await subgraph.app.fastify.listen({ host: '127.0.0.1', port: 0 });
      const url = `http://127.0.0.1:${(subgraph.app.fastify.server.address() as { port: number }).port}/graphql`;
      const admin = await subgraph.adminToken();
      const send = (traceId: string) =>
        fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${admin}`, traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-01` },
          body: JSON.stringify({ query: 'query Refs($r: [_Any!]!) { _entities(representations: $r) { ... on Payment { id amount } } }', variables: { r: [{ __typename: 'Payment', id: '1' }, { __typename: 'Payment', id: '2' }] } }),
        }).then((res) => res.json() as Promise<any>);
      await send(randomBytes(16).toString('hex')); // the viewer's state is cached from here on
      const traceId = randomBytes(16).toString('hex');
      const body = await send(traceId);
      expect(body.errors).toBeUndefined();
      expect(body.data._entities.map((e: { id: string }) => e.id)).toEqual(['1', '2']);
      const mine = await traceOf(traceId, (s) => s.some((x) => x.name === 'graphql.query Refs') && s.some((x) => attr(x, 'db.query.shape')));
      const operation = mine.find((s) => s.name === 'graphql.query Refs')!;
      const batch = mine.find((s) => s.name === 'dataloader.batch paymentById')!;
      expect(batch.parentSpanId).toBe(operation.spanId);
      expect(Number(attr(batch, 'paygraph.batch.size'))).toBe(2);
      const sql = mine.filter((s) => attr(s, 'db.query.shape'));
      expect(sql).toHaveLength(1);
      expect(sql[0]!.parentSpanId).toBe(batch.spanId);
    } finally {
      await subgraph.close();
    }
  });
});
