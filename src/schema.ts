import 'reflect-metadata';
import { buildSchema, type AuthChecker, type BuildSchemaOptions, type MiddlewareFn, type NonEmptyArray } from 'type-graphql';
import { lexicographicSortSchema, printSchema, type GraphQLSchema } from 'graphql';
import { validate } from 'class-validator';
import { UserResolver } from './modules/user/user.resolver.js';
import { PaymentResolver } from './modules/payment/payment.resolver.js';
import { AuditResolver } from './modules/audit/audit.resolver.js';
import { PaymentSubscriptionResolver } from './modules/realtime/subscription.resolver.js';
import { BadUserInputError } from './core/errors.js';
import { requireViewer } from './modules/auth/auth.js';
import { Role } from './modules/user/user.entity.js';
import { ForbiddenError } from './core/errors.js';
import { useLeanFieldResolvers } from './core/lean-resolvers.js';
import { notePath, TrackResolverPath } from './core/resolver-path.js';
import { buildSubgraph } from './modules/federation/federation.js';
import type { Context } from './context.js';

export const resolvers: NonEmptyArray<Function> = [UserResolver, PaymentResolver, AuditResolver, PaymentSubscriptionResolver];

/**
 * type-graphql wants a PubSub for any `@Subscription`, also when each brings its own `subscribe`, as
 * ours does (see src/modules/realtime): topic subscriptions are not used here, and one would fail loudly.
 */
const topicPubSubUnused = {
  publish(): never {
    throw new Error('paygraph publishes payment changes through its PaymentEventBus, not type-graphql topics');
  },
  subscribe(): never {
    throw new Error('paygraph subscriptions bring their own subscribe function; type-graphql topics are not used');
  },
};

/**
 * The schema's validateFn, for every argument: no NUL characters anywhere, and input objects with
 * their class-validator rules (a violation is BAD_USER_INPUT listing every broken rule). Synchronous
 * for values that hold no such object (scalars, enums), so a resolver need not wait for it; the lean
 * field resolvers call this same function.
 */
export function validateArgument(value: unknown): void | Promise<void> {
  // Scalars and enums (every argument of the per-parent field resolvers): no allocation, no promise.
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'string' && value.includes('\u0000')) assertNoNulByte(value);
    return;
  }
  assertNoNulByte(value);
  const values = Array.isArray(value) ? value : [value];
  const objects = values.filter((v) => v !== null && typeof v === 'object' && v.constructor !== Object);
  if (objects.length > 0) return validateObjects(objects);
}

async function validateObjects(values: readonly object[]): Promise<void> {
  for (const v of values) {
    const errors = await validate(v, { forbidUnknownValues: false, validationError: { target: false, value: false } });
    if (errors.length > 0) {
      const messages = errors.flatMap((e) => Object.values(e.constraints ?? {}));
      throw new BadUserInputError(`Invalid input: ${messages.join('; ')}`, {
        validationErrors: errors.map((e) => ({ field: e.property, messages: Object.values(e.constraints ?? {}) })),
      });
    }
  }
}

/** PostgreSQL text cannot hold U+0000; refuse it up front rather than fail in the driver. */
function assertNoNulByte(value: unknown): void {
  if (containsNulByte(value)) {
    throw new BadUserInputError('Text arguments must not contain NUL (\\u0000) characters');
  }
}

function containsNulByte(value: unknown, depth = 0): boolean {
  if (typeof value === 'string') return value.includes('\u0000');
  if (depth > 8 || value === null || typeof value !== 'object') return false;
  return Object.values(value).some((v) => containsNulByte(v, depth + 1));
}

/**
 * `@Authorized()` (any signed-in viewer) and `@Authorized(Role.ADMIN)` with the API's own codes:
 * UNAUTHENTICATED without a viewer, FORBIDDEN without the role.
 */
export const authChecker: AuthChecker<Context> = ({ context }, roles) => {
  const viewer = requireViewer(context.viewer);
  if (roles.length > 0 && !roles.includes(viewer.role) && viewer.role !== Role.ADMIN) throw new ForbiddenError(`This field needs one of the roles ${roles.join(', ')}`);
  return true;
};

/** What `buildSchema` is given (tests build variants of it). */
export function appSchemaOptions(extraResolvers: Function[] = []): BuildSchemaOptions & { resolvers: NonEmptyArray<Function> } {
  return { resolvers: [...resolvers, ...extraResolvers] as NonEmptyArray<Function>, validateFn: validateArgument, authChecker, pubSub: topicPubSubUnused };
}

/** Field resolvers run once per parent: call those it can serve exactly without type-graphql's per-call machinery. */
export function useAppLeanResolvers(schema: GraphQLSchema, options: BuildSchemaOptions): void {
  useLeanFieldResolvers(schema, options, {
    pathMiddleware: TrackResolverPath as MiddlewareFn<never>,
    notePath: (context, info) => notePath(context as Context, info),
  });
}

/** The executable schema. Tests may add resolvers (e.g. a deliberately naive one). */
export async function buildAppSchema(extraResolvers: Function[] = []): Promise<GraphQLSchema> {
  const options = appSchemaOptions(extraResolvers);
  const schema = await buildSchema(options);
  useAppLeanResolvers(schema, options);
  return schema;
}

/** The SDL committed as schema.graphql: sorted, so diffs show real changes only. */
export function printAppSchema(schema: GraphQLSchema): string {
  return `${printSchema(lexicographicSortSchema(schema))}\n`;
}

/**
 * The schema the server runs: the app schema, or with `federation` (GRAPHQL_FEDERATION=true) the
 * Apollo Federation 2 subgraph over it (src/modules/federation).
 */
export async function buildServedSchema(options: { federation: boolean; extraResolvers?: Function[] }): Promise<GraphQLSchema> {
  const schema = await buildAppSchema(options.extraResolvers);
  return options.federation ? buildSubgraph(schema, printAppSchema(schema)) : schema;
}
