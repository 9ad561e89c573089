import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Arg, Authorized, buildSchema, Ctx, Field, FieldResolver, InputType, Resolver, Root, UseMiddleware, type MiddlewareFn } from 'type-graphql';
import { MaxLength } from 'class-validator';
import { isObjectType, type GraphQLFieldResolver, type GraphQLResolveInfo, type GraphQLSchema } from 'graphql';
import { createTestApp, type TestApp } from '../helpers/test-app.js';
import { appSchemaOptions, buildAppSchema, useAppLeanResolvers } from '../../src/schema.js';
import { Role } from '../../src/modules/user/user.entity.js';
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

  /** `@Authorized()` with no roles stores `[]`: type-graphql still enforces it (any viewer). */
  @FieldResolver(() => Number)
  @Authorized()
  signedInOnly(@Root() user: UserRow): number {
    return user.id;
  }

  @FieldResolver(() => Number)
  @Authorized(Role.ADMIN)
  adminOnly(@Root() user: UserRow): number {
    return user.id;
  }
}

/** Tests only: `@Authorized()` on the resolver class guards every field in it. */
@Resolver(() => UserType)
@Authorized()
class AuthorizedClassProbeResolver {
  @FieldResolver(() => Number)
  classGuarded(@Root() user: UserRow): number {
    return user.id;
  }
}

const PROBES = [LeanProbeResolver, AuthorizedClassProbeResolver];

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
    t = await createTestApp({ seed: { users: 3, paymentsPerUser: 2 }, appOptions: { extraResolvers: PROBES } });
  });
  afterAll(async () => t?.close());

  it('serve the per-parent fields; operations and fields needing middleware or input validation keep type-graphql', async () => {
    const kinds = resolverKinds(await buildAppSchema(PROBES));
    expect(kinds).toMatchObject({
      'User.signedInOnly': 'type-graphql',
      'User.adminOnly': 'type-graphql',
      'User.classGuarded': 'type-graphql',
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

  it('keep type-graphql, and its check, for @Authorized() with no roles, on a field and on a class', async () => {
    const schema = await buildAppSchema(PROBES);
    const user = schema.getType('User');
    if (!isObjectType(user)) throw new Error('no User type');
    const anonymous = { viewer: null, sql: { notePath() {} } };
    const signedIn = { viewer: { id: 2, role: Role.USER }, sql: { notePath() {} } };
    const info = { path: { prev: undefined, key: 'f', typename: 'User' } } as unknown as GraphQLResolveInfo;
    for (const name of ['signedInOnly', 'classGuarded']) {
      const resolve = user.getFields()[name]!.resolve!;
      // A lean resolver would simply call the method and answer 5.
      await expect(Promise.resolve().then(() => resolve({ id: 5 }, {}, anonymous, info))).rejects.toMatchObject({ extensions: { code: 'UNAUTHENTICATED' } });
      expect(await resolve({ id: 5 }, {}, signedIn, info)).toBe(5);
    }
  });

  it('enforce @Authorized(role) through the API: FORBIDDEN for a USER, served for an ADMIN', async () => {
    const asUser = await t.gql('{ me { id adminOnly } }', { token: await t.userToken(2) });
    expect(asUser.body.errors?.[0]).toMatchObject({ path: ['me', 'adminOnly'], extensions: { code: 'FORBIDDEN' } });
    const asAdmin = await t.gql('{ me { adminOnly signedInOnly classGuarded } }', { token: await t.adminToken() });
    expect(asAdmin.body.errors).toBeUndefined();
    expect(asAdmin.body.data!.me).toEqual({ adminOnly: 1, signedInOnly: 1, classGuarded: 1 });
  });

  it('take no field at all when the schema has global middlewares or a DI container', async () => {
    for (const extra of [{ globalMiddlewares: [CountCalls] }, { container: { get: (cls: new () => unknown) => new cls() } }]) {
      const options = { ...appSchemaOptions(PROBES), ...extra };
      const schema = await buildSchema(options);
      useAppLeanResolvers(schema, options);
      const kinds = Object.entries(resolverKinds(schema));
      expect(kinds.length).toBeGreaterThan(10);
      expect(kinds.filter(([, kind]) => kind === 'lean')).toEqual([]);
    }
  });

  it('check scalar arguments with the schema\'s own validateFn, given the value and its type', async () => {
    const seen: unknown[] = [];
    const options = { ...appSchemaOptions(PROBES), validateFn: (value: unknown, type: unknown) => void seen.push([value, type]) };
    const schema = await buildSchema(options);
    useAppLeanResolvers(schema, options);
    const user = schema.getType('User');
    if (!isObjectType(user)) throw new Error('no User type');
    const echo = user.getFields().echo!.resolve as GraphQLFieldResolver<unknown, unknown> & { [LEAN_RESOLVER]?: true };
    expect(echo[LEAN_RESOLVER]).toBe(true);
    const info = { path: { prev: undefined, key: 'echo', typename: 'User' } } as unknown as GraphQLResolveInfo;
    expect(echo({ id: 4 }, { text: 'x' }, { viewer: { id: 9 }, sql: { notePath() {} } }, info)).toBe('4:x:9');
    expect(seen).toEqual([['x', String]]);
  });

  it('answer Payment.user with the row the request already holds at once (no promise), authorization first', async () => {
    const schema = await buildAppSchema();
    const payment = schema.getType('Payment');
    if (!isObjectType(payment)) throw new Error('no Payment type');
    const resolve = payment.getFields().user!.resolve!;
    const row = { id: 3, email: 'user3@paygraph.dev', name: 'x', isActive: true, role: 'USER', createdAt: 0, deletedAt: null };
    const loaded: number[] = [];
    const loaders = {
      knownUser: (id: number) => (id === 3 ? row : undefined),
      userById: { load: async (id: number) => (loaded.push(id), { ...row, id }) },
    };
    const info = { path: { prev: undefined, key: 'user', typename: 'Payment' } } as unknown as GraphQLResolveInfo;
    const ctx = (viewer: { id: number; role: Role }) => ({ viewer, loaders, sql: { notePath() {} } });
    // Held: the row itself, synchronously, and no load.
    expect(resolve({ id: 10, userId: 3 }, {}, ctx({ id: 1, role: Role.ADMIN }), info)).toBe(row);
    expect(loaded).toEqual([]);
    // Not held: through the loader.
    const pending = resolve({ id: 11, userId: 4 }, {}, ctx({ id: 1, role: Role.ADMIN }), info);
    expect(pending).toBeInstanceOf(Promise);
    expect(await pending).toMatchObject({ id: 4 });
    expect(loaded).toEqual([4]);
    // Another user's payment: refused before anything is looked at.
    expect(() => resolve({ id: 10, userId: 3 }, {}, ctx({ id: 2, role: Role.USER }), info)).toThrow(/User not found/);
  });
});
