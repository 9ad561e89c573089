import { EntityManager } from '@mikro-orm/core';
import type { CacheSpec, QueryCache } from './query-cache.js';

/** The request scope bound to each request's EntityManager fork (see `buildContext`). */
const scopes = new WeakMap<EntityManager, QueryCache>();

export function bindQueryCache(em: EntityManager, cache: QueryCache): void {
  scopes.set(em, cache);
}

export function queryCacheFor(em: EntityManager | undefined): QueryCache | undefined {
  return em ? scopes.get(em) : undefined;
}

export interface CachedOptions<Args extends unknown[]> extends CacheSpec<Args> {
  /** Key name; default `<Class>.<method>`. The arguments' `cacheKey` is appended. */
  key?: string;
}

/**
 * Caches a repository or service method's result through the calling request's `QueryCache` (the
 * original design note's `@cached(ttl=...)`). The request is found through the entity manager: a
 * repository's own (`getEntityManager()`) or the first EntityManager argument. Outside a request, or
 * with the cache disabled, the method simply runs.
 */
export function cached<Args extends unknown[]>(options: CachedOptions<Args> = {}) {
  return function (target: object, propertyKey: string, descriptor: PropertyDescriptor): void {
    const original = descriptor.value as (...args: Args) => Promise<unknown>;
    const name = options.key ?? `${target.constructor.name}.${propertyKey}`;
    descriptor.value = function (this: unknown, ...args: Args) {
      const self = this as { getEntityManager?: () => EntityManager; entityName?: string } | undefined;
      const isRepository = typeof self?.getEntityManager === 'function';
      const em = isRepository ? self!.getEntityManager!() : (args.find((a) => a instanceof EntityManager) as EntityManager | undefined);
      const scope = queryCacheFor(em);
      if (!scope?.enabled) return original.apply(this, args);
      // Neither the key nor the tags see an EntityManager argument.
      const keyArgs = args.filter((a) => !(a instanceof EntityManager)) as unknown as Args;
      // The load reads through the EntityManager the scope hands it (its statements are tagged reads).
      // (A scope made without an EntityManager hands none: then the method reads as it was called.)
      return scope.getOrLoad(name, keyArgs, options, (loadEm) =>
        !loadEm
          ? original.apply(this, args)
          : isRepository
            ? original.apply(loadEm.getRepository(self!.entityName!), args)
            : original.apply(this, args.map((a) => (a instanceof EntityManager ? loadEm : a)) as Args),
      );
    };
  };
}

/**
 * The same for a plain function whose first argument is the request's EntityManager:
 * `const countFor = cachedFunction('countFor', { tags: (id) => [...] }, (em, id) => ...)`.
 */
export function cachedFunction<Args extends unknown[], T>(
  name: string,
  options: CacheSpec<Args>,
  fn: (em: EntityManager, ...args: Args) => Promise<T>,
): (em: EntityManager, ...args: Args) => Promise<T> {
  return (em, ...args) => {
    const scope = queryCacheFor(em);
    if (!scope?.enabled) return fn(em, ...args);
    return scope.getOrLoad(name, args, options, (loadEm) => fn(loadEm ?? em, ...args));
  };
}
