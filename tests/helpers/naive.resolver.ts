import { Ctx, FieldResolver, Resolver, Root, UseMiddleware } from 'type-graphql';
import { UserType } from '../../src/modules/user/user.types.js';
import { PaymentType } from '../../src/modules/payment/payment.types.js';
import { Payment } from '../../src/modules/payment/payment.entity.js';
import { paymentEntityToRow, type PaymentRow } from '../../src/modules/payment/payment.repository.js';
import type { UserRow } from '../../src/modules/user/user.repository.js';
import type { Context } from '../../src/context.js';
import { TrackResolverPath } from '../../src/core/resolver-path.js';

/**
 * Tests only: `User.naivePayments` resolves with one `em.find` per user, the N+1 this project exists
 * to prevent. It proves the statement counter sees 1 + N when the code is naive.
 */
@Resolver(() => UserType)
@UseMiddleware(TrackResolverPath)
export class NaivePaymentsResolver {
  @FieldResolver(() => [PaymentType])
  async naivePayments(@Root() user: UserRow, @Ctx() ctx: Context): Promise<PaymentRow[]> {
    const payments = await ctx.em.find(Payment, { user: user.id }, { orderBy: { createdAt: 'desc', id: 'desc' }, limit: 3 });
    return payments.map(paymentEntityToRow);
  }
}
