import { getMetadataStorage, type BuildSchemaOptions, type MiddlewareFn, type ResolverData } from 'type-graphql';
import {
  getNamedType,
  isEnumType,
  isObjectType,
  isScalarType,
  type GraphQLArgument,
  type GraphQLFieldResolver,
  type GraphQLResolveInfo,
  type GraphQLSchema,
} from 'graphql';

type ParamGetter = (root: unknown, args: Record<string, unknown>, context: unknown, info: GraphQLResolveInfo) => unknown;
type FieldResolverMetadata = ReturnType<typeof getMetadataStorage>['fieldResolvers'][number];
type ParamMetadata = NonNullable<FieldResolverMetadata['params']>[number];
type ValidateFn = NonNullable<BuildSchemaOptions['validateFn']>;

/** Marks the resolve functions this module made (tests check the hot fields have one). */
export const LEAN_RESOLVER = Symbol('leanResolver');

export interface LeanResolverOptions {
  /** The one middleware a lean resolver may stand in for, and what it does on each call. */
  pathMiddleware: MiddlewareFn<never>;
  notePath: (context: unknown, info: GraphQLResolveInfo) => void;
}

/** Why a field keeps type-graphql's resolver; null when a lean one can stand in for it exactly. */
export function leanRefusal(meta: FieldResolverMetadata, buildOptions: BuildSchemaOptions, options: LeanResolverOptions): string | null {
  const storage = getMetadataStorage();
  // `@Authorized()` with no roles stores `[]`, which type-graphql still enforces: any roles value counts.
  if (meta.roles !== undefined) return 'authorized';
  if (storage.authorizedResolver.some((a) => a.target === meta.target)) return 'authorized class';
  if (storage.authorizedFields.some((a) => a.fieldName === meta.methodName && (a.target === meta.target || a.target === meta.getObjectType?.()))) {
    return 'authorized';
  }
  if (buildOptions.globalMiddlewares && buildOptions.globalMiddlewares.length > 0) return 'global middlewares';
  // A container decides how resolver instances are made (per request, injected): only type-graphql knows.
  if (buildOptions.container !== undefined) return 'container';
  if ((meta.middlewares ?? []).some((m) => m !== options.pathMiddleware)) return 'middleware';
  return null;
}

/**
 * type-graphql calls every resolver through its middleware chain, an async validation per argument
 * and a Promise.all over the parameters: several kilobytes of short-lived objects per call. A field
 * resolver runs once per parent, so under `users(first: 100) { nodes { payments } }` that is a
 * hundred times per request, and it was about a third of the request's garbage.
 *
 * For each `@FieldResolver` that a plain graphql-js resolver can serve exactly as type-graphql would,
 * this puts one in the schema: it notes the path, runs each scalar argument through the schema's own
 * `validateFn` (awaiting it only if it answers with a promise), and calls the same method with the same
 * parameters in declared order. It takes nothing it does not fully understand: a field keeps
 * type-graphql's resolver if it (or its resolver class, or the field on the object type) has
 * `@Authorized` in any form, if the schema has global middlewares or a DI container, if the field has a
 * middleware other than the path-noting one, or a parameter other than `@Root()`, `@Ctx()`, `@Info()`
 * and `@Arg()`s of scalar or enum type without validation settings of their own.
 *
 * `buildOptions` must be the very object given to `buildSchema`.
 */
export function useLeanFieldResolvers(schema: GraphQLSchema, buildOptions: BuildSchemaOptions, options: LeanResolverOptions): void {
  const storage = getMetadataStorage();
  const resolverClasses = buildOptions.resolvers as readonly Function[];
  const instances = new Map<Function, Record<string, (...params: unknown[]) => unknown>>();
  for (const meta of storage.fieldResolvers) {
    if (meta.kind !== 'external' || !resolverClasses.includes(meta.target) || !meta.getObjectType) continue;
    const objectClass = meta.getObjectType();
    const typeName = storage.objectTypes.find((t) => t.target === objectClass)?.name;
    const type = typeName ? schema.getType(typeName) : undefined;
    if (!isObjectType(type)) continue;
    const field = type.getFields()[meta.schemaName];
    if (!field) continue;
    if (leanRefusal(meta, buildOptions, options) !== null) continue;
    const params = paramGetters(meta.params ?? [], field.args, buildOptions.validateFn);
    if (!params) continue;

    let instance = instances.get(meta.target);
    if (!instance) {
      instance = new (meta.target as new () => Record<string, (...params: unknown[]) => unknown>)();
      instances.set(meta.target, instance);
    }
    const target = instance;
    const method = target[meta.methodName]!;
    const notePath = (meta.middlewares ?? []).length > 0 ? options.notePath : null;
    const { getters, validated } = params;
    const resolve: GraphQLFieldResolver<unknown, unknown> & { [LEAN_RESOLVER]?: true } = (root, args, context, info) => {
      notePath?.(context, info);
      const values = new Array<unknown>(getters.length);
      for (let i = 0; i < getters.length; i++) values[i] = getters[i]!(root, args, context, info);
      if (validated.length === 0) return method.apply(target, values);
      const pending = validate(validated, values, { root, args, context, info } as ResolverData);
      return pending ? pending.then(() => method.apply(target, values)) : method.apply(target, values);
    };
    resolve[LEAN_RESOLVER] = true;
    field.resolve = resolve;
  }
}

interface ValidatedParam {
  index: number;
  type: Parameters<ValidateFn>[1];
  validateFn: ValidateFn;
}

/** Runs the schema's validateFn on each argument, as type-graphql does; a promise only if one answered with one. */
function validate(validated: readonly ValidatedParam[], values: unknown[], data: ResolverData): Promise<unknown> | null {
  let pending: Promise<unknown>[] | null = null;
  for (const { index, type, validateFn } of validated) {
    const result = validateFn(values[index], type, data) as unknown;
    if (result instanceof Promise) (pending ??= []).push(result);
  }
  return pending ? Promise.all(pending) : null;
}

/** One getter per method parameter, in parameter order; null when a parameter needs type-graphql. */
function paramGetters(
  params: readonly ParamMetadata[],
  args: readonly GraphQLArgument[],
  validateFn: ValidateFn | undefined,
): { getters: ParamGetter[]; validated: ValidatedParam[] } | null {
  const getters: ParamGetter[] = [];
  const validated: ValidatedParam[] = [];
  for (const param of [...params].sort((a, b) => a.index - b.index)) {
    if (getters.length !== param.index) return null;
    switch (param.kind) {
      case 'root':
        if (param.propertyName || param.getType) return null;
        getters.push((root) => root);
        break;
      case 'context':
        if (param.propertyName) return null;
        getters.push((_root, _args, context) => context);
        break;
      case 'info':
        getters.push((_root, _args, _context, info) => info);
        break;
      case 'arg': {
        const arg = args.find((a) => a.name === param.name);
        const named = arg && getNamedType(arg.type);
        if (!named || !(isScalarType(named) || isEnumType(named))) return null;
        if (param.validateFn || param.validateSettings !== undefined) return null;
        const name = param.name;
        // type-graphql gives the schema's validateFn every argument value; so does this.
        if (validateFn) validated.push({ index: param.index, type: param.getType(), validateFn });
        getters.push((_root, args) => args[name]);
        break;
      }
      default:
        return null;
    }
  }
  return { getters, validated };
}
