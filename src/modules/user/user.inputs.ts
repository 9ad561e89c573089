import { Field, InputType } from 'type-graphql';
import { IsEmail, IsOptional, Length, MaxLength } from 'class-validator';
import { Role } from './user.entity.js';

@InputType('CreateUserInput')
export class CreateUserInput {
  @Field(() => String)
  @IsEmail({}, { message: 'email must be a valid email address' })
  @MaxLength(320)
  email!: string;

  @Field(() => String)
  @Length(1, 200, { message: 'name must be 1 to 200 characters' })
  name!: string;

  @Field(() => Role, { nullable: true, defaultValue: Role.USER })
  role?: Role;

  @Field(() => Boolean, { nullable: true, defaultValue: true })
  isActive?: boolean;
}

@InputType('UpdateUserInput')
export class UpdateUserInput {
  @Field(() => String, { nullable: true })
  @IsOptional()
  @IsEmail({}, { message: 'email must be a valid email address' })
  @MaxLength(320)
  email?: string;

  @Field(() => String, { nullable: true })
  @IsOptional()
  @Length(1, 200, { message: 'name must be 1 to 200 characters' })
  name?: string;

  @Field(() => Role, { nullable: true, description: 'ADMIN only.' })
  role?: Role;

  @Field(() => Boolean, { nullable: true, description: 'ADMIN only.' })
  isActive?: boolean;
}
