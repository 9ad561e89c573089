import type { FastifyInstance } from 'fastify';
import type { MikroORM } from '@mikro-orm/postgresql';
import Stripe from 'stripe';
import { applyStripeEvent } from './webhook.service.js';
import { attributedFork } from '../../core/sql-stats.js';
import { isEmptyChange, type WriteChange } from '../../core/cache/index.js';

export const WEBHOOK_PATH = '/webhooks/stripe';
const BODY_LIMIT = 1024 * 1024;
/** Seconds a signed timestamp stays valid (Stripe's default). */
const TOLERANCE_SECONDS = 300;

export interface WebhookDeps {
  orm: MikroORM;
  webhookSecret: string | undefined;
  written: (change: WriteChange) => Promise<void>;
}

/**
 * `POST /webhooks/stripe`: the raw body (never parsed before verification) is checked against the
 * `Stripe-Signature` header with the SDK; anything unsigned, wrongly signed, stale or malformed is a
 * 400 and writes nothing. A verified event is applied exactly once and acknowledged with 200, also
 * when it is a duplicate or concerns a PaymentIntent we do not know (so Stripe stops retrying it).
 */
export async function registerStripeWebhook(fastify: FastifyInstance, deps: WebhookDeps): Promise<void> {
  await fastify.register(async (scope) => {
    // In this scope only, every body stays the exact bytes Stripe signed.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: BODY_LIMIT }, (_req, body, done) => done(null, body));

    scope.post(WEBHOOK_PATH, { bodyLimit: BODY_LIMIT }, async (request, reply) => {
      if (!deps.webhookSecret) {
        return reply.code(503).send({ error: 'Stripe webhooks are not configured (STRIPE_WEBHOOK_SECRET is unset)' });
      }
      const signature = request.headers['stripe-signature'];
      if (typeof signature !== 'string' || !Buffer.isBuffer(request.body)) {
        return reply.code(400).send({ error: 'a raw body and a Stripe-Signature header are required' });
      }
      let event: Stripe.Event;
      try {
        event = Stripe.webhooks.constructEvent(request.body, signature, deps.webhookSecret, TOLERANCE_SECONDS);
      } catch (err) {
        const reason = err instanceof Stripe.errors.StripeSignatureVerificationError ? 'signature verification failed' : 'malformed event';
        request.log.warn({ reason }, 'rejected Stripe webhook');
        return reply.code(400).send({ error: reason });
      }
      if (typeof event?.id !== 'string' || typeof event.type !== 'string' || typeof event.data?.object !== 'object') {
        return reply.code(400).send({ error: 'malformed event' });
      }
      // Its statements are attributed to this request (operation logs, slow-statement reports).
      const { outcome, change } = await applyStripeEvent(attributedFork(deps.orm.em, request.id), event);
      if (!isEmptyChange(change)) await deps.written(change);
      request.log.info({ eventId: event.id, type: event.type, outcome }, 'stripe webhook');
      return reply.code(200).send({ received: true, outcome });
    });
  });
}
