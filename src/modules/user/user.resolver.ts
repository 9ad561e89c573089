import { Arg, Ctx, FieldResolver, Info, UseMiddleware, ID, Int, Mutation, Query, Resolver, Root } from 'type-graphql';
import { Role, User } from './user.entity.js';
import { userEntityToRow, type UserRow } from './user.repository.js';
import { UserConnection, UserFilter, UserType } from './user.types.js';
import { CreateUserInput, UpdateUserInput } from './user.inputs.js';
import { userService } from './user.service.js';
import { PaymentStatus } from '../payment/payment.entity.js';
import { PaymentConnection, PaymentStatsType } from '../payment/payment.types.js';
import type { PaymentPageRow, PaymentStatsRow } from '../payment/payment.repository.js';
import { paymentPageShape } from '../payment/payment.fields.js';
import type { GraphQLResolveInfo } from 'graphql';
import { canSeeUser, requireAdmin, requireViewer, type Viewer } from '../auth/auth.js';
import { userActor } from '../audit/audit.js';
import type { Context } from '../../context.js';
import { TrackResolverPath } from '../../core/resolver-path.js';
import { Connection } from '../../core/connection.js';
import { NotFoundError } from '../../core/errors.js';
import { cacheTags } from '../../core/cache/index.js';
import {
  assertPageSize,
  decodePaymentCursor,
  decodeUserCursor,
  DEFAULT_PAGE_SIZE,
  encodePaymentCursor,
  encodeUserCursor,
  parseId,
} from '../../core/pagination.js';

function writeDeps(ctx: Context) {
  return { em: ctx.em, audit: userActor(requireViewer(ctx.viewer).id, ctx.requestId, ctx.clientRequestId) };
}

/** A deleted user is gone for everyone: a USER gets NOT_FOUND, an ADMIN null, as for no user at all. */
function existingUser(viewer: Viewer, row: UserRow | null): UserRow | null {
  if (row && row.deletedAt === null) return row;
  if (viewer.role !== Role.ADMIN) throw new NotFoundError('User');
  return null;
}

/** A page row carries createdAt whenever its selection has a cursor (see paymentPageShape). */
function pageRowCursor(row: PaymentPageRow): string {
  if (row.createdAt === undefined) throw new Error(`payment ${row.id} was fetched without the createdAt its cursor needs`);
  return encodePaymentCursor({ id: row.id, createdAt: row.createdAt });
}

@Resolver(() => UserType)
@UseMiddleware(TrackResolverPath)
export class UserResolver {
  @Query(() => UserType, { nullable: true, description: 'The user the bearer token belongs to.' })
  async me(@Ctx() ctx: Context): Promise<UserRow | null> {
    const viewer = requireViewer(ctx.viewer);
    return existingUser(viewer, await ctx.loaders.userById.load(viewer.id));
  }

  @Query(() => UserType, { nullable: true, description: 'A USER may ask only for themself.' })
  async user(@Arg('id', () => ID) id: string, @Ctx() ctx: Context): Promise<UserRow | null> {
    const viewer = requireViewer(ctx.viewer);
    const userId = parseId(id);
    if (!canSeeUser(viewer, userId)) throw new NotFoundError('User');
    return existingUser(viewer, await ctx.loaders.userById.load(userId));
  }

  @Query(() => UserType, { nullable: true })
  async userByEmail(@Arg('email', () => String) email: string, @Ctx() ctx: Context): Promise<UserRow | null> {
    const viewer = requireViewer(ctx.viewer);
    const row = await ctx.cache.getOrLoad('userByEmail', [email], { tags: () => [cacheTags.users] }, (em) => em.getRepository(User).findRowByEmail(email));
    if (!row) {
      // For a USER, "no such email" must look the same as "someone else's email".
      if (viewer.role !== Role.ADMIN) throw new NotFoundError('User');
      return null;
    }
    if (!canSeeUser(viewer, row.id)) throw new NotFoundError('User');
    ctx.loaders.primeUsers([row]);
    return row;
  }

  @Query(() => UserConnection, { description: 'ADMIN only. Ordered by id.' })
  async users(
    @Arg('first', () => Int, { nullable: true, defaultValue: DEFAULT_PAGE_SIZE }) first: number | null,
    @Arg('after', () => String, { nullable: true }) after: string | null,
    @Arg('filter', () => UserFilter, { nullable: true }) filter: UserFilter | null,
    @Ctx() ctx: Context,
  ): Promise<Connection<UserRow>> {
    requireAdmin(ctx.viewer);
    const size = assertPageSize(first);
    const afterId = after ? decodeUserCursor(after) : undefined;
    const usersTag = { tags: () => [cacheTags.users] };
    const rows = await ctx.cache.getOrLoad('userPage', [size, afterId ?? null, filter], usersTag, (em) =>
      em.getRepository(User).findPage({ first: size, afterId, filter: filter ?? undefined }),
    );
    ctx.loaders.primeUsers(rows);
    return new Connection(rows, size, encodeUserCursor, () =>
      ctx.cache.getOrLoad('userCount', [filter], usersTag, (em) => em.getRepository(User).countByFilter(filter ?? undefined)),
    );
  }

  @FieldResolver(() => PaymentConnection, { description: 'Newest first.' })
  async payments(
    @Root() user: UserRow,
    @Info() info: GraphQLResolveInfo,
    @Arg('first', () => Int, { nullable: true, defaultValue: DEFAULT_PAGE_SIZE }) first: number | null,
    @Arg('after', () => String, { nullable: true }) after: string | null,
    @Arg('status', () => PaymentStatus, { nullable: true }) status: PaymentStatus | null,
    @Ctx() ctx: Context,
  ): Promise<Connection<PaymentPageRow>> {
    // Every path to a user already checked visibility; this guards paths added later.
    if (!canSeeUser(requireViewer(ctx.viewer), user.id)) throw new NotFoundError('User');
    const size = assertPageSize(first);
    const cursor = after ? decodePaymentCursor(after) : null;
    const shape = paymentPageShape(info);
    const rows = await ctx.loaders.paymentsByUserId.load({
      userId: user.id,
      first: size,
      after: cursor,
      status: status ?? null,
      fields: shape.fields,
      probe: shape.probe,
    });
    return new Connection(rows, size, pageRowCursor, () =>
      ctx.loaders.countPaymentsByUserId.load({ userId: user.id, status: status ?? null }),
    );
  }

  @FieldResolver(() => Int)
  async paymentCount(
    @Root() user: UserRow,
    @Arg('status', () => PaymentStatus, { nullable: true }) status: PaymentStatus | null,
    @Ctx() ctx: Context,
  ): Promise<number> {
    if (!canSeeUser(requireViewer(ctx.viewer), user.id)) throw new NotFoundError('User');
    return ctx.loaders.countPaymentsByUserId.load({ userId: user.id, status: status ?? null });
  }

  @FieldResolver(() => [PaymentStatsType], { description: 'Per status and currency; served from the query cache when warm.' })
  async paymentStats(@Root() user: UserRow, @Ctx() ctx: Context): Promise<PaymentStatsRow[]> {
    if (!canSeeUser(requireViewer(ctx.viewer), user.id)) throw new NotFoundError('User');
    return ctx.loaders.paymentStatsByUserId.load(user.id);
  }

  @Mutation(() => UserType, { description: 'ADMIN only.' })
  async createUser(@Arg('input', () => CreateUserInput) input: CreateUserInput, @Ctx() ctx: Context): Promise<UserRow> {
    requireAdmin(ctx.viewer);
    const user = await userService.createUser(writeDeps(ctx), input);
    await ctx.cache.write({ users: [user.id] });
    return userEntityToRow(user);
  }

  @Mutation(() => UserType, { description: 'A USER may change their own email and name.' })
  async updateUser(
    @Arg('id', () => ID) id: string,
    @Arg('input', () => UpdateUserInput) input: UpdateUserInput,
    @Ctx() ctx: Context,
  ): Promise<UserRow> {
    const viewer = requireViewer(ctx.viewer);
    const user = await userService.updateUser(writeDeps(ctx), viewer, parseId(id), input);
    await ctx.cache.write({ users: [user.id] });
    return userEntityToRow(user);
  }

  @Mutation(() => Boolean, {
    description: "ADMIN only. A soft delete: the user is gone from every read and their tokens stop working; their payments stay.",
  })
  async deleteUser(@Arg('id', () => ID) id: string, @Ctx() ctx: Context): Promise<boolean> {
    requireAdmin(ctx.viewer);
    const userId = parseId(id);
    const deleted = await userService.deleteUser(writeDeps(ctx), userId);
    await ctx.cache.write({ users: [userId], paymentsOfUsers: [userId] });
    return deleted;
  }
}
