import 'reflect-metadata';
import { buildSchema, type MiddlewareFn, type NonEmptyArray } from 'type-graphql';
import { lexicographicSortSchema, printSchema, type GraphQLSchema } from 'graphql';
import { validate } from 'class-validator';
import { UserResolver } from './modules/user/user.resolver.js';
import { PaymentResolver } from './modules/payment/payment.resolver.js';
import { BadUserInputError } from './core/errors.js';
import { useLeanFieldResolvers } from './core/lean-resolvers.js';
import { notePath, TrackResolverPath } from './core/resolver-path.js';
import type { Context } from './context.js';

export const resolvers: NonEmptyArray<Function> = [UserResolver, PaymentResolver];

/**
 * Validates input objects with their class-validator rules. Scalars and classes without rules pass
 * untouched; a violation is BAD_USER_INPUT listing every broken rule.
 */
async function validateInput(value: unknown): Promise<void> {
  assertNoNulByte(value);
  const values = Array.isArray(value) ? value : [value];
  for (const v of values) {
    if (v === null || typeof v !== 'object' || v.constructor === Object) continue;
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

/** The executable schema. Tests may add resolvers (e.g. a deliberately naive one). */
export async function buildAppSchema(extraResolvers: Function[] = []): Promise<GraphQLSchema> {
  const all = [...resolvers, ...extraResolvers] as NonEmptyArray<Function>;
  const schema = await buildSchema({ resolvers: all, validateFn: (value) => validateInput(value) });
  // Field resolvers run once per parent: call them without type-graphql's per-call machinery.
  useLeanFieldResolvers(schema, {
    resolvers: all,
    pathMiddleware: TrackResolverPath as MiddlewareFn<never>,
    notePath: (context, info) => notePath(context as Context, info),
    checkScalarArg: assertNoNulByte,
  });
  return schema;
}

/** The SDL committed as schema.graphql: sorted, so diffs show real changes only. */
export function printAppSchema(schema: GraphQLSchema): string {
  return `${printSchema(lexicographicSortSchema(schema))}\n`;
}
