import { getMetadataStorage, type MiddlewareFn } from 'type-graphql';
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

/** Marks the resolve functions this module made (tests check the hot fields have one). */
export const LEAN_RESOLVER = Symbol('leanResolver');

export interface LeanResolverOptions {
  /** The resolver classes the schema was built from (the ones whose methods may be called here). */
  resolvers: readonly Function[];
  /** The one middleware a lean resolver may stand in for, and what it does on each call. */
  pathMiddleware: MiddlewareFn<never>;
  notePath: (context: unknown, info: GraphQLResolveInfo) => void;
  /** Checks one scalar argument value, as the schema's validateFn would (throws to refuse it). */
  checkScalarArg: (value: unknown) => void;
}

/**
 * type-graphql calls every resolver through its middleware chain, an async validation per argument
 * and a Promise.all over the parameters: several kilobytes of short-lived objects per call. A field
 * resolver runs once per parent, so under `users(first: 100) { nodes { payments } }` that is a
 * hundred times per request, and it was about a third of the request's garbage.
 *
 * For each `@FieldResolver` whose parameters are only `@Root()`, `@Ctx()`, `@Info()` and `@Arg()`s of
 * scalar or enum type, whose only middleware is the path-noting one and that has no `@Authorized`
 * roles, this puts a plain graphql-js resolver in the schema that does the same: notes the path,
 * checks the scalar arguments, and calls the same method with the same parameters in declared
 * order. Any other field resolver (input-object arguments, other middlewares) keeps type-graphql's.
 */
export function useLeanFieldResolvers(schema: GraphQLSchema, options: LeanResolverOptions): void {
  const storage = getMetadataStorage();
  const instances = new Map<Function, Record<string, (...params: unknown[]) => unknown>>();
  for (const meta of storage.fieldResolvers) {
    if (meta.kind !== 'external' || !options.resolvers.includes(meta.target) || !meta.getObjectType) continue;
    const objectClass = meta.getObjectType();
    const typeName = storage.objectTypes.find((t) => t.target === objectClass)?.name;
    const type = typeName ? schema.getType(typeName) : undefined;
    if (!isObjectType(type)) continue;
    const field = type.getFields()[meta.schemaName];
    if (!field) continue;

    const middlewares = meta.middlewares ?? [];
    if (meta.roles?.length || middlewares.some((m) => m !== options.pathMiddleware)) continue;
    const getters = paramGetters(meta.params ?? [], field.args, options.checkScalarArg);
    if (!getters) continue;

    let instance = instances.get(meta.target);
    if (!instance) {
      instance = new (meta.target as new () => Record<string, (...params: unknown[]) => unknown>)();
      instances.set(meta.target, instance);
    }
    const target = instance;
    const method = target[meta.methodName]!;
    const notePath = middlewares.length > 0 ? options.notePath : null;
    const resolve: GraphQLFieldResolver<unknown, unknown> & { [LEAN_RESOLVER]?: true } = (root, args, context, info) => {
      notePath?.(context, info);
      const params = new Array<unknown>(getters.length);
      for (let i = 0; i < getters.length; i++) params[i] = getters[i]!(root, args, context, info);
      return method.apply(target, params);
    };
    resolve[LEAN_RESOLVER] = true;
    field.resolve = resolve;
  }
}

/** One getter per method parameter, in parameter order; null when a parameter needs type-graphql. */
function paramGetters(
  params: NonNullable<ReturnType<typeof getMetadataStorage>['fieldResolvers'][number]['params']>,
  args: readonly GraphQLArgument[],
  checkScalarArg: (value: unknown) => void,
): ParamGetter[] | null {
  const getters: ParamGetter[] = [];
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
        if (!named || !(isScalarType(named) || isEnumType(named)) || param.validateFn) return null;
        const name = param.name;
        getters.push((_root, args) => {
          const value = args[name];
          checkScalarArg(value);
          return value;
        });
        break;
      }
      default:
        return null;
    }
  }
  return getters;
}
