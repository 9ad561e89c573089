import { Arg, Ctx, FieldResolver, UseMiddleware, ID, Int, Mutation, Query, Resolver, Root } from 'type-graphql';
import { Payment, PaymentStatus } from './payment.entity.js';
import type { PaymentRepository, PaymentRow } from './payment.repository.js';
import { PaymentConnection, PaymentType } from './payment.types.js';
import { Role } from '../user/user.entity.js';
import type { UserRow } from '../user/user.repository.js';
import { UserType } from '../user/user.types.js';
import { canSeeUser, requireAdmin, requireViewer, type Viewer } from '../auth/auth.js';
import type { Context } from '../../context.js';
import { TrackResolverPath } from '../../core/resolver-path.js';
import { Connection } from '../../core/connection.js';
import { BadUserInputError, NotFoundError } from '../../core/errors.js';
import { CreatePaymentInput, CreatePaymentPayload } from './payment.inputs.js';
import type { CreatePaymentResult, PaymentDeps } from './payment.service.js';
import { cacheTags } from '../../core/cache/index.js';
import { userActor } from '../audit/audit.js';
import { assertPageSize, decodePaymentCursor, DEFAULT_PAGE_SIZE, encodePaymentCursor, parseId } from '../../core/pagination.js';

/** A USER gets NOT_FOUND for anyone else's payment and for none at all alike; an ADMIN gets null. */
function visiblePayment(viewer: Viewer, payment: PaymentRow | null): PaymentRow | null {
  if (!payment || !canSeeUser(viewer, payment.userId)) {
    if (payment || viewer.role !== Role.ADMIN) throw new NotFoundError('Payment');
    return null;
  }
  return payment;
}

/**
 * A single payment through the query cache (the row only: its user is cached on its own, under its
 * own tag). On a miss it is one joined statement, and the user row is primed into the request's user
 * loader, so `payment { user { ... } }` costs nothing more; that row was read under the `users` tag,
 * which the load watches. Authorization runs on whatever comes back, cached or not.
 */
async function cachedPayment(
  ctx: Context,
  name: string,
  arg: number | string,
  tags: string[],
  load: (repo: PaymentRepository) => Promise<{ payment: PaymentRow; user: UserRow } | null>,
): Promise<PaymentRow | null> {
  return ctx.cache.getOrLoad(name, [arg], { tags: () => tags, watch: () => [cacheTags.users] }, async (em) => {
    const found = await load(em.getRepository(Payment));
    if (!found) return null;
    ctx.loaders.primeUsers([found.user]);
    return found.payment;
  });
}

function paymentDeps(ctx: Context): PaymentDeps {
  return {
    em: ctx.em,
    stripe: ctx.stripe,
    written: (change) => ctx.cache.write(change),
    primeUser: (user) => ctx.loaders.primeUsers([user]),
    audit: userActor(requireViewer(ctx.viewer).id, ctx.requestId, ctx.clientRequestId),
  };
}

@Resolver(() => PaymentType)
@UseMiddleware(TrackResolverPath)
export class PaymentResolver {
  @Query(() => PaymentType, { nullable: true })
  async payment(@Arg('id', () => ID) id: string, @Ctx() ctx: Context): Promise<PaymentRow | null> {
    const viewer = requireViewer(ctx.viewer);
    const paymentId = parseId(id);
    const row = await cachedPayment(ctx, 'payment', paymentId, [cacheTags.payment(paymentId)], (repo) => repo.findRowWithUser({ id: paymentId }));
    return visiblePayment(viewer, row);
  }

  @Query(() => PaymentType, { nullable: true })
  async paymentByStripeId(
    @Arg('stripePaymentId', () => String) stripePaymentId: string,
    @Ctx() ctx: Context,
  ): Promise<PaymentRow | null> {
    const viewer = requireViewer(ctx.viewer);
    const row = await cachedPayment(ctx, 'paymentByStripeId', stripePaymentId, [cacheTags.paymentByStripeId(stripePaymentId)], (repo) =>
      repo.findRowWithUser({ stripePaymentId }),
    );
    return visiblePayment(viewer, row);
  }

  @Query(() => PaymentConnection, { description: 'ADMIN only. Newest first.' })
  async payments(
    @Arg('first', () => Int, { nullable: true, defaultValue: DEFAULT_PAGE_SIZE }) first: number | null,
    @Arg('after', () => String, { nullable: true }) after: string | null,
    @Arg('status', () => PaymentStatus, { nullable: true }) status: PaymentStatus | null,
    @Arg('userId', () => ID, { nullable: true }) userId: string | null,
    @Ctx() ctx: Context,
  ): Promise<Connection<PaymentRow>> {
    requireAdmin(ctx.viewer);
    return this.page(ctx, first, after, { status: status ?? null, userId: userId == null ? null : parseId(userId, 'userId') });
  }

  @Query(() => PaymentConnection, { description: "The viewer's own payments, newest first." })
  async paymentHistory(
    @Arg('first', () => Int, { nullable: true, defaultValue: DEFAULT_PAGE_SIZE }) first: number | null,
    @Arg('after', () => String, { nullable: true }) after: string | null,
    @Arg('status', () => PaymentStatus, { nullable: true }) status: PaymentStatus | null,
    @Ctx() ctx: Context,
  ): Promise<Connection<PaymentRow>> {
    const viewer = requireViewer(ctx.viewer);
    return this.page(ctx, first, after, { status: status ?? null, userId: viewer.id });
  }

  @Mutation(() => CreatePaymentPayload, {
    description: "Starts a payment for the viewer. The same idempotencyKey again (also concurrently) returns the same payment and never creates a second PaymentIntent.",
  })
  async createPayment(@Arg('input', () => CreatePaymentInput) input: CreatePaymentInput, @Ctx() ctx: Context): Promise<CreatePaymentResult> {
    const viewer = requireViewer(ctx.viewer);
    return ctx.payments.createPayment(paymentDeps(ctx), viewer, input);
  }

  @Mutation(() => PaymentType, { description: "Owner or ADMIN; PENDING or REQUIRES_ACTION only. The final CANCELED status arrives with Stripe's webhook." })
  async cancelPayment(@Arg('id', () => ID) id: string, @Ctx() ctx: Context): Promise<PaymentRow> {
    const viewer = requireViewer(ctx.viewer);
    return ctx.payments.cancelPayment(paymentDeps(ctx), viewer, parseId(id));
  }

  @Mutation(() => PaymentType, {
    description: "ADMIN only; COMPLETED only. `amount` (minor units) defaults to all that is left; the webhook records the refund.",
  })
  async refundPayment(
    @Arg('id', () => ID) id: string,
    @Arg('amount', () => Int, { nullable: true }) amount: number | null,
    @Arg('idempotencyKey', () => String, { nullable: true, description: 'Retrying with the same key never refunds twice.' }) idempotencyKey: string | null,
    @Ctx() ctx: Context,
  ): Promise<PaymentRow> {
    requireAdmin(ctx.viewer);
    if (idempotencyKey != null && (idempotencyKey.length < 8 || idempotencyKey.length > 255)) {
      throw new BadUserInputError('idempotencyKey must be 8 to 255 characters', { argumentName: 'idempotencyKey' });
    }
    return ctx.payments.refundPayment(paymentDeps(ctx), parseId(id), amount ?? null, idempotencyKey ?? null);
  }

  /**
   * Not async on purpose: when the request already holds the user's row (a page under its user, or
   * any user row read before), the answer is that row at once, no promise, so a thousand payments of
   * `users { payments { user } }` keep the executor on its synchronous path. Authorization first, always.
   */
  @FieldResolver(() => UserType)
  user(@Root() payment: PaymentRow, @Ctx() ctx: Context): UserRow | Promise<UserRow> {
    if (!canSeeUser(requireViewer(ctx.viewer), payment.userId)) throw new NotFoundError('User');
    const known = ctx.loaders.knownUser(payment.userId);
    if (known) return known;
    return ctx.loaders.userById.load(payment.userId).then((user) => {
      // The foreign key makes this impossible short of a concurrent delete, which it also forbids.
      if (!user) throw new Error(`payment ${payment.id} has no user ${payment.userId}`);
      return user;
    });
  }

  /** One statement: the page joined with its users, which are primed for `Payment.user`. */
  private async page(
    ctx: Context,
    first: number | null,
    after: string | null,
    filter: { status: PaymentStatus | null; userId: number | null },
  ): Promise<Connection<PaymentRow>> {
    const size = assertPageSize(first);
    const cursor = after ? decodePaymentCursor(after) : null;
    // One user's page holds that user's rows only; the whole list holds anyone's.
    const tags = filter.userId != null ? [cacheTags.paymentsOfUser(filter.userId), cacheTags.user(filter.userId)] : [cacheTags.payments, cacheTags.users];
    const { payments, users } = await ctx.cache.getOrLoad(
      'paymentPage',
      [size, cursor?.createdAtMs ?? null, cursor?.id ?? null, filter.status, filter.userId],
      { tags: () => tags },
      (em) => em.getRepository(Payment).findPageWithUsers({ first: size, after: cursor, filter }),
    );
    ctx.loaders.primeUsers(users);
    const count =
      filter.userId != null
        ? () => ctx.loaders.countPaymentsByUserId.load({ userId: filter.userId!, status: filter.status })
        : () => ctx.cache.getOrLoad('paymentCount', [filter.status], { tags: () => [cacheTags.payments] }, (em) => em.getRepository(Payment).countByFilter(filter));
    return new Connection(payments, size, encodePaymentCursor, count);
  }
}
