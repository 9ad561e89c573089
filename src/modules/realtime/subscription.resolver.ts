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

/** What happens to one event of a subscriber, once the subscriber is checked as they are now. */
type Verdict = 'deliver' | 'skip' | 'end' | 'close';

/**
 * The subscriber, as the database says now (not as at subscribe time), before an event is delivered
 * to them: the user's row through the event's shared loaders (one batch for all its subscribers on
 * this instance; from the shared cache under `user:<id>`, which every write to the user bumps on every
 * instance). Deactivated or deleted: the socket is closed (4403). A role change re-authorizes: an
 * ADMIN-wide stream ends for a user who is no longer ADMIN; a payment the viewer may no longer see is
 * not delivered, and a subscription to that one payment ends.
 */
async function recheck(ctx: Context, subscribedAs: Viewer, paymentId: number | null, event: PaymentEvent): Promise<Verdict> {
  const row = await ctx.loaders.userById.load(subscribedAs.id);
  if (!row || row.deletedAt !== null || !row.isActive) return 'close';
  const viewer: Viewer = { id: row.id, role: row.role };
  ctx.viewer = viewer;
  if (paymentId === null && subscribedAs.role === Role.ADMIN && viewer.role !== Role.ADMIN) return 'end';
  if (!canSeeUser(viewer, event.payment.userId)) return paymentId === null ? 'skip' : 'end';
  return 'deliver';
}

/**
 * The events of the bus that `accept` lets through, as an async iterator. Before each event is
 * handed to the executor, the subscriber's context takes the loaders that event shares on this
 * instance (so `Payment.user` of 100 subscribers is one batch), and the subscriber is checked as they
 * are now (`recheck`). A check that cannot be made (the database away) closes the socket with 1013
 * (try again later): the client reconnects, and is checked at connect.
 */
function eventStream(ctx: Context, subscribedAs: Viewer, paymentId: number | null, accept: (payment: PaymentRow) => boolean): AsyncIterableIterator<PaymentEvent> {
  const queue: PaymentEvent[] = [];
  let waiting: ((event: PaymentEvent | null) => void) | null = null;
  let done = false;
  let overflow = false;
  const stop = ctx.events.bus.listen((event) => {
    if (done || !accept(event.payment)) return;
    if (waiting) {
      const resolve = waiting;
      waiting = null;
      resolve(event);
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
    waiting?.(null);
    waiting = null;
  }
  const end = (): IteratorResult<PaymentEvent> => {
    finish();
    return { value: undefined, done: true };
  };
  return {
    [Symbol.asyncIterator]() {
      return this;
    },
    async next() {
      for (;;) {
        const event = queue.shift() ?? (done ? null : await new Promise<PaymentEvent | null>((resolve) => (waiting = resolve)));
        if (!event) return end();
        ctx.loaders = ctx.events.loadersFor(event);
        let verdict: Verdict;
        try {
          verdict = await recheck(ctx, subscribedAs, paymentId, event);
        } catch {
          ctx.connection?.close(1013, 'Cannot check the viewer now; reconnect');
          return end();
        }
        if (verdict === 'deliver') return { value: event, done: false };
        if (verdict === 'close') {
          ctx.connection?.close(4403, 'This token no longer grants access');
          return end();
        }
        if (verdict === 'end') return end();
      }
    },
    return() {
      return Promise.resolve(end());
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
      return eventStream(ctx, viewer, paymentId, acceptFor(viewer, paymentId));
    },
  })
  paymentUpdated(@Root() event: PaymentEvent, @Arg('id', () => ID, { nullable: true }) _id: string | null, @Ctx() _ctx: Context): PaymentRow {
    return event.payment;
  }
}
