import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Arg, Ctx, Field, FieldResolver, InputType, Resolver, Root, UseMiddleware, type MiddlewareFn } from 'type-graphql';
import { MaxLength } from 'class-validator';
import { isObjectType, type GraphQLSchema } from 'graphql';
import { createTestApp, type TestApp } from '../helpers/test-app.js';
import { buildAppSchema } from '../../src/schema.js';
import { LEAN_RESOLVER } from '../../src/core/lean-resolvers.js';
import { TrackResolverPath } from '../../src/core/resolver-path.js';
import { UserType } from '../../src/modules/user/user.types.js';
import type { UserRow } from '../../src/modules/user/user.repository.js';
import type { Context } from '../../src/context.js';

let guardedCalls = 0;
const CountCalls: MiddlewareFn = (_data, next) => {
  guardedCalls++;
  return next();
};

@InputType('LeanProbeInput')
class ProbeInput {
  @Field(() => String)
  @MaxLength(3)
  s!: string;
}

/** Tests only: User fields that do and do not qualify for a lean resolver. */
@Resolver(() => UserType)
@UseMiddleware(TrackResolverPath)
class LeanProbeResolver {
  @FieldResolver(() => String)
  echo(@Root() user: UserRow, @Arg('text', () => String) text: string, @Ctx() ctx: Context): string {
    return `${user.id}:${text}:${ctx.viewer?.id}`;
  }

  @FieldResolver(() => Number)
  @UseMiddleware(CountCalls)
  guarded(@Root() user: UserRow): number {
    return user.id;
  }

  @FieldResolver(() => String)
  withInput(@Root() user: UserRow, @Arg('input', () => ProbeInput) input: ProbeInput): string {
    return `${user.id}:${input.s}`;
  }
}

function resolverKinds(schema: GraphQLSchema): Record<string, 'lean' | 'type-graphql'> {
  const kinds: Record<string, 'lean' | 'type-graphql'> = {};
  for (const type of Object.values(schema.getTypeMap())) {
    if (!isObjectType(type) || type.name.startsWith('__')) continue;
    for (const field of Object.values(type.getFields())) {
      if (field.resolve) kinds[`${type.name}.${field.name}`] = (field.resolve as { [LEAN_RESOLVER]?: true })[LEAN_RESOLVER] ? 'lean' : 'type-graphql';
    }
  }
  return kinds;
}

describe('lean field resolvers', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp({ seed: { users: 3, paymentsPerUser: 2 }, appOptions: { extraResolvers: [LeanProbeResolver] } });
  });
  afterAll(async () => t?.close());

  it('serve the per-parent fields; operations and fields needing middleware or input validation keep type-graphql', async () => {
    const kinds = resolverKinds(await buildAppSchema([LeanProbeResolver]));
    expect(kinds).toMatchObject({
      'User.payments': 'lean',
      'User.paymentCount': 'lean',
      'User.paymentStats': 'lean',
      'Payment.user': 'lean',
      'User.echo': 'lean',
      'User.guarded': 'type-graphql',
      'User.withInput': 'type-graphql',
      'Query.users': 'type-graphql',
      'Mutation.updateUser': 'type-graphql',
    });
  });

  it('call the method with root, arguments and context in declared order', async () => {
    const { body } = await t.gql('{ users(first: 2) { nodes { echo(text: "hi") } } }', { token: await t.adminToken() });
    expect(body.errors).toBeUndefined();
    expect(body.data!.users.nodes).toEqual([{ echo: '1:hi:1' }, { echo: '2:hi:1' }]);
  });

  it('refuse a NUL byte in a scalar argument as the schema validation does', async () => {
    const { body } = await t.gql('query($s: String!) { users(first: 1) { nodes { echo(text: $s) } } }', {
      token: await t.adminToken(),
      variables: { s: 'a\u0000b' },
    });
    expect(body.errors?.[0]).toMatchObject({ path: ['users', 'nodes', 0, 'echo'], extensions: { code: 'BAD_USER_INPUT' } });
  });

  it('leave middlewares and input validation to type-graphql where a field has them', async () => {
    guardedCalls = 0;
    const token = await t.adminToken();
    const guarded = await t.gql('{ users(first: 3) { nodes { guarded } } }', { token });
    expect(guarded.body.data!.users.nodes).toEqual([{ guarded: 1 }, { guarded: 2 }, { guarded: 3 }]);
    expect(guardedCalls).toBe(3);
    const invalid = await t.gql('{ users(first: 1) { nodes { withInput(input: { s: "toolong" }) } } }', { token });
    expect(invalid.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    const valid = await t.gql('{ users(first: 1) { nodes { withInput(input: { s: "ok" }) } } }', { token });
    expect(valid.body.data!.users.nodes).toEqual([{ withInput: '1:ok' }]);
  });
});
