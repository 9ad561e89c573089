import type { ApolloServerPlugin, GraphQLRequestContextDidResolveOperation, GraphQLRequestContextWillSendResponse } from '@apollo/server';
import { Counter, Gauge, type Registry } from 'prom-client';
import { checkedOperationCost, fragmentsOf, rootTypeOf } from '../../core/security.js';
import { ThrottledError } from '../../core/errors.js';
import type { Context } from '../../context.js';
import type { Config } from '../../config.js';
import type { Viewer } from '../auth/auth.js';
import { Role } from '../user/user.entity.js';
import type { BudgetStore } from './budget-store.js';
import type { BucketSpec, Taken } from './buckets.js';
import { responseCost } from './cost.js';

/** The budgets' settings (RATE_LIMIT_*; see src/config.ts). */
export type LimitsSettings = Config['limits'];

/** `extensions.cost`, with Shopify's names so clients that know them understand it. */
export interface CostExtension {
  requestedQueryCost: number;
  /** null when the request was refused (nothing ran). */
  actualQueryCost: number | null;
  throttleStatus: { maximumAvailable: number; currentlyAvailable: number; restoreRate: number };
}

/** A client's budget: whose it is, and its size. */
interface Budget {
  key: string;
  spec: BucketSpec;
}

/** Seconds, from now, until a bucket holding `available` is full again (`x-ratelimit-reset` is this as a Unix time). */
function secondsToFull(available: number, spec: BucketSpec): number {
  return Math.max(0, Math.ceil((spec.capacity - available) / spec.restorePerSecond));
}

/** The `x-ratelimit-*` headers of a response (GitHub's names), from what its budget holds now. */
export function rateLimitHeaders(spec: BucketSpec, available: number, used: number): [string, string][] {
  return [
    ['x-ratelimit-limit', String(spec.capacity)],
    ['x-ratelimit-remaining', String(Math.floor(available))],
    ['x-ratelimit-used', String(used)],
    ['x-ratelimit-reset', String(Math.ceil(Date.now() / 1000) + secondsToFull(available, spec))],
  ];
}

function costExtension(spec: BucketSpec, requested: number, actual: number | null, available: number): CostExtension {
  return {
    requestedQueryCost: requested,
    actualQueryCost: actual,
    throttleStatus: { maximumAvailable: spec.capacity, currentlyAvailable: Math.floor(available), restoreRate: spec.restorePerSecond },
  };
}

function throttled(requested: number, taken: Taken, spec: BucketSpec): ThrottledError {
  return new ThrottledError(
    `Throttled: this operation costs ${requested} points and ${Math.floor(taken.available)} of ${spec.capacity} are available (${spec.restorePerSecond} restored per second); retry in ${taken.retryAfterSeconds} s`,
    taken.retryAfterSeconds,
    { cost: costExtension(spec, requested, null, taken.available) },
  );
}

/** A response that could not be paid for: the error, its status and headers (for paths outside Apollo). */
export interface Refusal {
  status: 429;
  headers: [string, string][];
  body: string;
}

/**
 * Cost budgets per client over time (a leaky bucket per viewer, or per address without a token, in the
 * shared store), and the budgets of WebSocket connections and subscriptions. See docs/access.md (Limits).
 */
export function createLimits(
  settings: LimitsSettings,
  deps: { store: BudgetStore; maxCost: number; registry: Registry; log: BudgetStoreLog },
) {
  const store = deps.store;
  const refusals = new Counter({
    name: 'rate_limit_refusals_total',
    help: 'Requests refused because their budget was spent, by what was limited',
    labelNames: ['limit'] as const,
    registers: [deps.registry],
  });
  new Gauge({
    name: 'rate_limit_local_fallbacks',
    help: 'Budget operations counted in this instance because the shared store (Redis) was away, since start',
    registers: [deps.registry],
    collect() {
      this.set(store.localFallbacks);
    },
  });

  const budgetOf = (viewer: Pick<Viewer, 'id' | 'role'> | null, address: string): Budget =>
    viewer ? { key: `v:${viewer.id}`, spec: viewer.role === Role.ADMIN ? settings.admin : settings.user } : { key: `a:${address}`, spec: settings.anonymous };

  /** Puts back what was taken but not used; never fails a request (the store falls back locally). */
  const giveBack = (budget: Budget, points: number) => {
    if (points > 0) store.give(budget.key, points, budget.spec).catch((err: unknown) => deps.log.warn({ err }, 'rate limits: could not give back unused points'));
  };

  return {
    store,
    settings,

    /**
     * Takes each operation's cost from its client's budget once the operation is known (after parsing
     * and validation, before anything runs): refused, it is THROTTLED (429, Retry-After) and sends no
     * SQL. After it ran, what the response did not use is given back, and the response says what it
     * cost (`extensions.cost`, `x-ratelimit-*`). Also the GRAPHQL_MAX_COST check, so it replaces
     * `paginationCostPlugin`: no budget can pay for more than it holds.
     */
    plugin(): ApolloServerPlugin<Context> {
      return {
        async requestDidStart() {
          let budget: Budget | null = null;
          let requested = 0;
          let taken: Taken | null = null;
          let extra = 0;
          return {
            async didResolveOperation(requestContext: GraphQLRequestContextDidResolveOperation<Context>) {
              const { contextValue, operation } = requestContext;
              budget = budgetOf(contextValue.viewer, contextValue.clientAddress);
              extra = operation?.operation === 'mutation' ? settings.mutationCost * operation.selectionSet.selections.length : 0;
              requested = checkedOperationCost(requestContext, Math.max(0, Math.min(deps.maxCost, budget.spec.capacity) - extra)) + extra;
              taken = await store.take(budget.key, requested, budget.spec);
              if (!taken.allowed) {
                refusals.inc({ limit: 'cost' });
                throw throttled(requested, taken, budget.spec);
              }
            },
            async willSendResponse({ response, operation, schema, document }: GraphQLRequestContextWillSendResponse<Context>) {
              if (!budget || !taken || response.body.kind !== 'single') return;
              const result = response.body.singleResult;
              let actual: number | null = null;
              let available = taken.available;
              if (taken.allowed) {
                const root = operation ? rootTypeOf(schema, operation) : null;
                const used = root && operation && document ? responseCost(schema, operation.selectionSet, root, fragmentsOf(document), result.data) + extra : requested;
                actual = Math.min(requested, used);
                giveBack(budget, requested - actual);
                available = Math.min(budget.spec.capacity, available + requested - actual);
              }
              result.extensions = { ...result.extensions, cost: costExtension(budget.spec, requested, actual, available) };
              for (const [name, value] of rateLimitHeaders(budget.spec, available, actual ?? 0)) response.http.headers.set(name, value);
            },
          };
        },
      };
    },

    /**
     * A response-cache hit, answered before Apollo: it costs `cachedCost`. Returns the cost extension
     * and headers to add, or the whole refusal to send.
     */
    async chargeCachedHit(viewer: Pick<Viewer, 'id' | 'role'>, address: string): Promise<{ cost: CostExtension; headers: [string, string][] } | { refusal: Refusal }> {
      const budget = budgetOf(viewer, address);
      const cost = settings.cachedCost;
      const taken = await store.take(budget.key, cost, budget.spec);
      if (!taken.allowed) {
        refusals.inc({ limit: 'cost' });
        const error = throttled(cost, taken, budget.spec);
        const { http: _http, ...extensions } = error.extensions as Record<string, unknown>;
        return {
          refusal: {
            status: 429,
            headers: [['retry-after', String(taken.retryAfterSeconds)], ...rateLimitHeaders(budget.spec, taken.available, 0)],
            body: JSON.stringify({ errors: [{ message: error.message, extensions }], extensions: { cost: costExtension(budget.spec, cost, null, taken.available) } }),
          },
        };
      }
      return { cost: costExtension(budget.spec, cost, cost, taken.available), headers: rateLimitHeaders(budget.spec, taken.available, cost) };
    },

    /** One WebSocket connection attempt from `address`. */
    async allowConnection(address: string): Promise<Taken> {
      const taken = await store.take(`ws:${address}`, 1, settings.connections);
      if (!taken.allowed) refusals.inc({ limit: 'connections' });
      return taken;
    },

    /** One subscription started by `viewerId`. */
    async allowSubscription(viewerId: number): Promise<Taken> {
      const taken = await store.take(`sub:${viewerId}`, 1, settings.subscriptions);
      if (!taken.allowed) refusals.inc({ limit: 'subscriptions' });
      return taken;
    },

  };
}

type BudgetStoreLog = { warn(obj: object, msg: string): void; info(obj: object, msg: string): void };

export type Limits = ReturnType<typeof createLimits>;

/**
 * The client's address: the peer's, or, behind `trustedProxies` proxies that each append the address
 * they got the request from to `X-Forwarded-For`, the one the outermost trusted proxy saw. Entries a
 * client wrote itself sit further left and are never read, so they cannot be forged past the proxies.
 */
export function clientAddress(peer: string | undefined, forwardedFor: string | string[] | undefined, trustedProxies: number): string {
  const direct = peer ?? 'unknown';
  if (trustedProxies === 0 || forwardedFor === undefined) return direct;
  const hops = (Array.isArray(forwardedFor) ? forwardedFor.join(',') : forwardedFor)
    .split(',')
    .map((hop) => hop.trim())
    .filter(Boolean);
  // Right to left: the peer (our proxy), then what each trusted proxy says it got the request from.
  const chain = [direct, ...hops.reverse()];
  return chain[Math.min(trustedProxies, chain.length - 1)]!;
}
