import { Field, ID, Int, ObjectType, registerEnumType } from 'type-graphql';
import { GraphQLDateTime, GraphQLSafeInt } from 'graphql-scalars';
import { PaymentStatus } from './payment.entity.js';
import { connectionTypes } from '../../core/connection.js';

registerEnumType(PaymentStatus, {
  name: 'PaymentStatus',
  valuesConfig: {
    PENDING: { description: 'Created; waiting for the customer to pay.' },
    REQUIRES_ACTION: { description: 'Waiting for the customer: an authentication (3-D Secure) or redirect.' },
    PROCESSING: { description: 'Waiting for the bank: the charge is being processed.' },
    COMPLETED: { description: 'Paid. Partial refunds keep this status (see amountRefunded).' },
    FAILED: { description: 'The payment attempt failed (failureReason says why); the customer may retry.' },
    REFUNDED: { description: 'Fully refunded. Final.' },
    CANCELED: { description: 'Canceled before it was paid. Final.' },
  },
});

/** The public face of a payment; resolves from a `PaymentRow`. */
@ObjectType('Payment', { simpleResolvers: true })
export class PaymentType {
  @Field(() => ID)
  id!: number;

  @Field(() => Int, { description: 'Minor units of `currency` (cents for usd).' })
  amount!: number;

  @Field(() => String, { description: 'ISO 4217, lower-case.' })
  currency!: string;

  @Field(() => PaymentStatus)
  status!: PaymentStatus;

  @Field(() => String, { nullable: true })
  stripePaymentId!: string | null;

  @Field(() => String, { nullable: true })
  description!: string | null;

  @Field(() => Int, { description: 'Minor units refunded so far; a partial refund leaves the status COMPLETED.' })
  amountRefunded!: number;

  @Field(() => String, { nullable: true, description: 'Why the payment failed, as the payment provider said.' })
  failureReason!: string | null;

  /** Epoch milliseconds in rows; the DateTime scalar serialises a number as it does a Date. */
  @Field(() => GraphQLDateTime)
  createdAt!: number;
}

export const { ConnectionType: PaymentConnection } = connectionTypes('Payment', PaymentType);

@ObjectType('PaymentStats', { simpleResolvers: true, description: "Count and total of a user's payments in one status and currency." })
export class PaymentStatsType {
  @Field(() => PaymentStatus)
  status!: PaymentStatus;

  @Field(() => String)
  currency!: string;

  @Field(() => Int)
  count!: number;

  @Field(() => GraphQLSafeInt, { description: 'Minor units of `currency`.' })
  totalAmount!: number;
}
