import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import Stripe from 'stripe';

export const DOUBLE_SECRET_KEY = 'sk_test_paygraph_double';
export const WEBHOOK_SECRET = 'whsec_paygraph_test_secret';

export interface RecordedRequest {
  method: string;
  path: string;
  authorization: string | undefined;
  idempotencyKey: string | undefined;
  contentType: string | undefined;
  /** The form-encoded body as Stripe's API reads it, e.g. `form['metadata[paymentId]']`. */
  form: Record<string, string>;
  /** The query string (a GET's `expand[]`). */
  query: Record<string, string>;
  /** W3C trace context the SDK's request carried, if any. */
  traceparent: string | undefined;
}

/** The settings that point an app at this double: its key, webhook secret and address, no SDK retries. */
export function stripeEnvFor(double: StripeDouble, extra: Record<string, string> = {}): Record<string, string> {
  return {
    STRIPE_SECRET_KEY: DOUBLE_SECRET_KEY,
    STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET,
    STRIPE_API_BASE: double.url,
    STRIPE_MAX_NETWORK_RETRIES: '0',
    ...extra,
  };
}

export type DoubleMode = 'success' | 'decline' | 'error500' | 'error500AfterEffect' | 'retryable503' | 'hang' | 'slow';

/**
 * A local stand-in for the Stripe API, reached by the real SDK through STRIPE_API_BASE. It records what
 * the SDK really sends (auth header, form-encoded params, Idempotency-Key, metadata), replays the
 * saved response for a repeated Idempotency-Key as Stripe does (a 500 included), and can answer
 * success, a card decline (402), a server error (500), a lock timeout the client should retry (503
 * with `Stripe-Should-Retry: true`, not saved), not at all, or slowly (`slow`: the request is carried
 * out and saved as Stripe would, and its answer sent after `slowMs`, later than the client waits), or
 * with a 500 after carrying the request out (`error500AfterEffect`: the outcome a 500 leaves open).
 */
export class StripeDouble {
  readonly requests: RecordedRequest[] = [];
  mode: DoubleMode = 'success';
  /** When > 0, this many next requests get `mode`'s answer, then the mode goes back to success. */
  remainingInMode = 0;
  /** How reads (GET) are answered: normally, with a 500, with a 429 rate-limit error, or after a delay. */
  readMode: 'success' | 'error500' | 'rateLimited' = 'success';
  readDelayMs = 0;
  /** Reads answered with the state as it was when they arrived, sent this much later (a slow network). */
  readReplyDelayMs = 0;
  /** In `slow` mode, a POST is carried out (and saved under its Idempotency-Key) at once, but answered after this long. */
  slowMs = 0;
  readonly intents = new Map<string, Record<string, unknown>>();
  private readonly replays = new Map<string, { status: number; body: unknown }>();
  private readonly sockets = new Set<Socket>();
  private counter = 0;

  private constructor(private readonly server: Server) {}

  static async start(): Promise<StripeDouble> {
    const server = createServer();
    const double = new StripeDouble(server);
    server.on('request', (req, res) => void double.handle(req, res));
    server.on('connection', (s) => {
      double.sockets.add(s);
      s.on('close', () => double.sockets.delete(s));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return double;
  }

  get url(): string {
    const address = this.server.address();
    return `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  }

  /** Requests that created a PaymentIntent (POST /v1/payment_intents). */
  get intentCreations(): RecordedRequest[] {
    return this.requests.filter((r) => r.method === 'POST' && r.path === '/v1/payment_intents');
  }

  setMode(mode: DoubleMode, times = 0): void {
    this.mode = mode;
    this.remainingInMode = times;
  }

  /** Marks an intent as Stripe would after the customer paid (for cancel/refund checks). */
  succeed(intentId: string): void {
    this.setIntentStatus(intentId, 'succeeded');
  }

  /** Sets an intent's state as Stripe would move it, without sending any webhook (as when one is lost). */
  setIntentStatus(intentId: string, status: string, lastPaymentError: { message: string } | null = null): void {
    const intent = this.intents.get(intentId);
    if (!intent) throw new Error(`the double has no intent ${intentId}`);
    intent.status = status;
    intent.last_payment_error = lastPaymentError;
    if (status === 'succeeded' && !this.charges.has(intentId)) {
      this.charges.set(intentId, { id: `ch_${intentId}`, object: 'charge', amount: intent.amount, amount_refunded: 0, refunded: false, payment_intent: intentId });
    }
  }

  /** Refunds made, by id, as Stripe lists them (`GET /v1/refunds?payment_intent=`). */
  readonly refunds = new Map<string, { id: string; object: 'refund'; amount: number; payment_intent: string; status: 'succeeded'; metadata: Record<string, string> }>();

  /** The intent's charge, with what was refunded of it. */
  readonly charges = new Map<string, { id: string; object: 'charge'; amount: unknown; amount_refunded: number; refunded: boolean; payment_intent: string }>();

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private nextId(prefix: string): string {
    return `${prefix}_double_${++this.counter}`;
  }

  private currentMode(): DoubleMode {
    const mode = this.mode;
    if (mode !== 'success' && this.remainingInMode > 0 && --this.remainingInMode === 0) this.mode = 'success';
    return mode;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const url = new URL(req.url ?? '/', 'http://double');
    const record: RecordedRequest = {
      method: req.method ?? 'GET',
      path: url.pathname,
      authorization: req.headers.authorization,
      idempotencyKey: req.headers['idempotency-key'] as string | undefined,
      contentType: req.headers['content-type'],
      form: Object.fromEntries(new URLSearchParams(body)),
      query: Object.fromEntries(url.searchParams),
      traceparent: req.headers.traceparent as string | undefined,
    };
    this.requests.push(record);

    // Set below for a request carried out in `slow` mode; replays and refusals are answered at once.
    let delay = 0;
    let mode: DoubleMode = 'success';
    const send = (status: number, payload: unknown, headers: Record<string, string> = {}) => {
      // The answer is what the state was now, whenever it is sent.
      const text = JSON.stringify(payload);
      const write = () => {
        if (res.destroyed) return; // the client gave up waiting: what was done stays done
        res.writeHead(status, { 'content-type': 'application/json', 'request-id': `req_${randomBytes(6).toString('hex')}`, ...headers });
        res.end(text);
      };
      if (delay > 0) setTimeout(write, delay).unref();
      else write();
    };

    if (record.authorization !== `Bearer ${DOUBLE_SECRET_KEY}`) {
      return send(401, { error: { type: 'invalid_request_error', message: 'Invalid API Key provided' } });
    }
    const replayKey = record.idempotencyKey ? `${record.method} ${record.path} ${record.idempotencyKey}` : null;
    const replay = replayKey ? this.replays.get(replayKey) : undefined;
    if (replay) return send(replay.status, replay.body, { 'idempotent-replayed': 'true', 'stripe-should-retry': 'false' });

    const answer = (status: number, payload: unknown) => {
      if (replayKey) this.replays.set(replayKey, { status, body: payload });
      send(status, payload);
    };
    const serverError = { error: { type: 'api_error', message: 'An unknown error occurred (double)' } };
    /** The answer to a request carried out: its own, or (error500AfterEffect) a 500, saved as Stripe saves one. */
    const done = (status: number, payload: unknown) => (mode === 'error500AfterEffect' ? answer(500, serverError) : answer(status, payload));
    const metadataOf = (form: Record<string, string>) =>
      Object.fromEntries(Object.entries(form).filter(([k]) => k.startsWith('metadata[')).map(([k, v]) => [k.slice(9, -1), v]));

    mode = record.method === 'POST' ? this.currentMode() : 'success';
    if (record.method === 'GET') {
      if (this.readDelayMs > 0) await new Promise((r) => setTimeout(r, this.readDelayMs));
      if (this.readMode === 'error500') return send(500, { error: { type: 'api_error', message: 'An unknown error occurred (double)' } });
      if (this.readMode === 'rateLimited') return send(429, { error: { type: 'invalid_request_error', code: 'rate_limit', message: 'Too many requests (double)' } });
    }
    if (mode === 'slow') delay = this.slowMs;
    if (record.method === 'GET' && this.readReplyDelayMs > 0) delay = this.readReplyDelayMs;
    if (mode === 'hang') return; // never answers; the SDK's timeout has to end it
    if (mode === 'retryable503') {
      return send(503, { error: { type: 'api_error', message: 'Lock timeout (double)' } }, { 'stripe-should-retry': 'true' });
    }
    if (mode === 'error500') return answer(500, serverError);

    const intentPath = /^\/v1\/payment_intents\/([^/]+)(\/cancel)?$/.exec(record.path);
    if (record.method === 'POST' && record.path === '/v1/payment_intents') {
      if (mode === 'decline') {
        return answer(402, { error: { type: 'card_error', code: 'card_declined', decline_code: 'generic_decline', message: 'Your card was declined.' } });
      }
      const id = this.nextId('pi');
      const metadata = metadataOf(record.form);
      const intent = {
        id,
        object: 'payment_intent',
        amount: Number(record.form.amount),
        currency: record.form.currency,
        description: record.form.description ?? null,
        metadata,
        status: 'requires_payment_method',
        client_secret: `${id}_secret_${randomBytes(8).toString('hex')}`,
      };
      this.intents.set(id, intent);
      return done(200, intent);
    }
    if (intentPath) {
      const intent = this.intents.get(intentPath[1]!);
      if (!intent) return answer(404, { error: { type: 'invalid_request_error', code: 'resource_missing', message: `No such payment_intent: '${intentPath[1]}'` } });
      if (record.method === 'GET') {
        const expandCharge = Object.entries(record.query).some(([k, v]) => k.startsWith('expand') && v === 'latest_charge');
        const charge = this.charges.get(intent.id as string) ?? null;
        return send(200, { ...intent, latest_charge: expandCharge ? charge : (charge?.id ?? null) });
      }
      if (intentPath[2]) {
        if (intent.status === 'succeeded') {
          return answer(400, { error: { type: 'invalid_request_error', message: 'You cannot cancel this PaymentIntent because it has a status of succeeded.' } });
        }
        intent.status = 'canceled';
        return answer(200, intent);
      }
    }
    if (record.method === 'POST' && record.path === '/v1/refunds') {
      const charge = this.charges.get(record.form.payment_intent ?? '');
      if (charge) {
        charge.amount_refunded += Number(record.form.amount);
        charge.refunded = charge.amount_refunded >= Number(charge.amount);
      }
      const refund = { id: this.nextId('re'), object: 'refund' as const, amount: Number(record.form.amount), payment_intent: record.form.payment_intent ?? '', status: 'succeeded' as const, metadata: metadataOf(record.form) };
      this.refunds.set(refund.id, refund);
      return done(200, refund);
    }
    if (record.method === 'GET' && record.path === '/v1/refunds') {
      const data = [...this.refunds.values()].filter((r) => !record.query.payment_intent || r.payment_intent === record.query.payment_intent).reverse();
      return send(200, { object: 'list', data, has_more: false, url: '/v1/refunds' });
    }
    send(404, { error: { type: 'invalid_request_error', message: `Unrecognized request URL (${record.method}: ${record.path})` } });
  }
}

let eventCounter = 0;

/** A webhook delivery signed with the SDK's own test helper, as Stripe would sign it. */
export function signedEvent(
  type: string,
  object: Record<string, unknown>,
  options: { id?: string; secret?: string; timestamp?: number } = {},
): { id: string; payload: string; signature: string } {
  const id = options.id ?? `evt_test_${Date.now()}_${++eventCounter}`;
  const payload = JSON.stringify({ id, object: 'event', type, api_version: '2025-01-01', created: Math.floor(Date.now() / 1000), data: { object } });
  const signature = Stripe.webhooks.generateTestHeaderString({
    payload,
    secret: options.secret ?? WEBHOOK_SECRET,
    ...(options.timestamp !== undefined ? { timestamp: options.timestamp } : {}),
  });
  return { id, payload, signature };
}
