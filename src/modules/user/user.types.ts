import { Field, ID, InputType, ObjectType, registerEnumType } from 'type-graphql';
import { GraphQLDateTime } from 'graphql-scalars';
import { IsOptional, MaxLength } from 'class-validator';
import { Role } from './user.entity.js';
import { connectionTypes } from '../../core/connection.js';

registerEnumType(Role, { name: 'Role' });

/** The public face of a user; resolves from a `UserRow`. */
@ObjectType('User', { simpleResolvers: true })
export class UserType {
  @Field(() => ID)
  id!: number;

  @Field(() => String)
  email!: string;

  @Field(() => String)
  name!: string;

  @Field(() => Boolean)
  isActive!: boolean;

  @Field(() => Role)
  role!: Role;

  /** Epoch milliseconds in rows; the DateTime scalar serialises a number as it does a Date. */
  @Field(() => GraphQLDateTime)
  createdAt!: number;

  @Field(() => GraphQLDateTime, { nullable: true, description: "When the user was deleted (ADMINs see deleted users through their payments and the `deleted` filter)." })
  deletedAt!: number | null;
}

export const { ConnectionType: UserConnection } = connectionTypes('User', UserType);

@InputType('UserFilter')
export class UserFilter {
  @Field(() => Boolean, { nullable: true })
  isActive?: boolean | null;

  @Field(() => Role, { nullable: true })
  role?: Role | null;

  @Field(() => String, { nullable: true, description: 'Case-insensitive substring of the email.' })
  @IsOptional()
  @MaxLength(320, { message: 'emailContains must be at most 320 characters' })
  emailContains?: string | null;

  @Field(() => Boolean, { nullable: true, description: 'true: deleted users only. Otherwise deleted users are left out.' })
  deleted?: boolean | null;
}
