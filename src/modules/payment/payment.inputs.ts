import { Field, InputType, Int, ObjectType } from 'type-graphql';
import { IsIn, IsInt, IsOptional, Length, Matches, Max, MaxLength, Min } from 'class-validator';
import { PaymentType } from './payment.types.js';

/** Currencies this API takes (lower-case ISO 4217, as Stripe spells them). */
export const SUPPORTED_CURRENCIES = ['usd', 'eur', 'gbp', 'cad', 'aud', 'nzd', 'chf', 'sek', 'nok', 'dkk', 'pln', 'czk', 'jpy', 'sgd', 'hkd', 'mxn', 'brl'] as const;

export const MAX_AMOUNT = 99_999_999;

@InputType('CreatePaymentInput')
export class CreatePaymentInput {
  @Field(() => Int, { description: 'Minor units (cents for usd), 1 to 99,999,999.' })
  @IsInt()
  @Min(1, { message: 'amount must be at least 1 (minor units)' })
  @Max(MAX_AMOUNT, { message: `amount must be at most ${MAX_AMOUNT} (minor units)` })
  amount!: number;

  @Field(() => String, { description: `ISO 4217 code, any case: ${SUPPORTED_CURRENCIES.join(', ')}.` })
  @IsIn([...SUPPORTED_CURRENCIES, ...SUPPORTED_CURRENCIES.map((c) => c.toUpperCase())], {
    message: `currency must be one of ${SUPPORTED_CURRENCIES.join(', ')}`,
  })
  currency!: string;

  @Field(() => String, { nullable: true })
  @IsOptional()
  @MaxLength(500, { message: 'description must be at most 500 characters' })
  description?: string | null;

  @Field(() => String, { description: 'Your key for this payment (8-255 characters): the same key again returns the same payment.' })
  @Length(8, 255, { message: 'idempotencyKey must be 8 to 255 characters' })
  @Matches(/^[\x21-\x7e]+$/, { message: 'idempotencyKey must be printable ASCII without spaces' })
  idempotencyKey!: string;
}

@ObjectType('CreatePaymentPayload', { simpleResolvers: true })
export class CreatePaymentPayload {
  @Field(() => PaymentType)
  payment!: unknown;

  @Field(() => String, {
    nullable: true,
    description: "The PaymentIntent's client secret for Stripe.js; null once the payment is no longer pending.",
  })
  clientSecret!: string | null;
}
