import { Arg, Ctx, ID, Resolver, Root, Subscription, type SubscribeResolverData } from 'type-graphql';
import { Payment } from '../payment/payment.entity.js';
import { PaymentType } from '../payment/payment.types.js';
import type { PaymentRow } from '../payment/payment.repository.js';
import { Role } from '../user/user.entity.js';
import { canSeeUser, requireViewer, type Viewer } from '../auth/auth.js';
import type { Context } from '../../context.js';
import type { PaymentEvent } from './payment-events.js';
import { NotFoundError } from '../../core/errors.js';
import { parseId } from '../../core/pagination.js';
import { cacheTags } from '../../core/cache/index.js';

/** Events a subscriber has not consumed yet; past this, its stream ends (it is not reading). */
const MAX_QUEUED_EVENTS = 256;

/**
 * The events of the bus that `accept` lets through, as an async iterator. Before each event is
 * handed to the executor, the subscriber's context takes the loaders that event shares on this
 * instance, so `Payment.user` of 100 subscribers is one batch.
 */
function eventStream(ctx: Context, accept: (payment: PaymentRow) => boolean): AsyncIterableIterator<PaymentEvent> {
  const queue: PaymentEvent[] = [];
  let waiting: ((result: IteratorResult<PaymentEvent>) => void) | null = null;
  let done = false;
  let overflow = false;
  const stop = ctx.events.bus.listen((event) => {
    if (done || !accept(event.payment)) return;
    if (waiting) {
      const resolve = waiting;
      waiting = null;
      ctx.loaders = ctx.events.loadersFor(event);
      resolve({ value: event, done: false });
    } else if (queue.length < MAX_QUEUED_EVENTS) {
      queue.push(event);
    } else {
      overflow = true;
      finish();
    }
  });
  function finish(): void {
    if (done) return;
    done = true;
    stop();
    if (overflow) ctx.events.noteSlowSubscriber();
    waiting?.({ value: undefined, done: true });
    waiting = null;
  }
  return {
    [Symbol.asyncIterator]() {
      return this;
    },
    next() {
      const event = queue.shift();
      if (event) {
        ctx.loaders = ctx.events.loadersFor(event);
        return Promise.resolve({ value: event, done: false });
      }
      if (done) return Promise.resolve({ value: undefined, done: true });
      return new Promise((resolve) => (waiting = resolve));
    },
    return() {
      finish();
      return Promise.resolve({ value: undefined, done: true });
    },
    throw(err?: unknown) {
      finish();
      return Promise.reject(err);
    },
  };
}

/** Which changes a viewer's subscription receives: one payment (already checked visible), or their own (ADMIN: all). */
function acceptFor(viewer: Viewer, paymentId: number | null): (payment: PaymentRow) => boolean {
  if (paymentId !== null) return (payment) => payment.id === paymentId;
  if (viewer.role === Role.ADMIN) return () => true;
  return (payment) => payment.userId === viewer.id;
}

@Resolver(() => PaymentType)
export class PaymentSubscriptionResolver {
  @Subscription(() => PaymentType, {
    description:
      "Every change of a payment, as it is after the change. With `id`: that payment (its owner or an ADMIN; anyone else gets NOT_FOUND, as with `payment(id)`). Without: the viewer's own payments; for an ADMIN, all payments. Over graphql-ws on /graphql.",
    subscribe: async ({ args, context }: SubscribeResolverData<unknown, Record<string, unknown>, Context>) => {
      const ctx = context;
      const viewer = requireViewer(ctx.viewer);
      const raw = (args as { id?: string | null }).id;
      const paymentId = raw == null ? null : parseId(raw);
      if (paymentId !== null) {
        // The same check as payment(id), through the same cache entry.
        const row = await ctx.cache.getOrLoad('payment', [paymentId], { tags: () => [cacheTags.payment(paymentId)] }, async (em) => {
          const found = await em.getRepository(Payment).findRowWithUser({ id: paymentId });
          return found?.payment ?? null;
        });
        if (!row || !canSeeUser(viewer, row.userId)) throw new NotFoundError('Payment');
      }
      return eventStream(ctx, acceptFor(viewer, paymentId));
    },
  })
  paymentUpdated(@Root() event: PaymentEvent, @Arg('id', () => ID, { nullable: true }) _id: string | null, @Ctx() _ctx: Context): PaymentRow {
    return event.payment;
  }
}
