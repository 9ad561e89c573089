import type { MikroORM, SqlEntityManager } from '@mikro-orm/postgresql';
import { createLoaders, type Loaders } from './loaders.js';
import { attributedFork, SqlStats } from './core/sql-stats.js';
import type { TokenVerifier, Viewer } from './modules/auth/auth.js';
import { currentViewer } from './modules/auth/viewer.js';
import { bindQueryCache, QueryCache, type CacheService } from './core/cache/index.js';
import type { RequestScope } from './core/request-scope.js';
import type { StripeClient } from './modules/payment/stripe.client.js';
import type { PaymentService } from './modules/payment/payment.service.js';
import type { PaymentEvent, PaymentEventBus } from './modules/realtime/payment-events.js';
import type { ReadRouting } from './db/replicas/read-routing.js';
import { isDatabaseUnavailable } from './core/db-errors.js';
import { ServiceUnavailableError } from './core/errors.js';
import { clientRequestIdOf } from './core/request-id.js';

/** Everything a resolver may use; made fresh for every GraphQL request by `buildContext`. */
export interface Context extends RequestScope {
  /** The request's identity in logs, traces and the audit log: made by the server (Fastify's request id). */
  requestId: string;
  /** The `x-request-id` the client sent, when sane: recorded beside `requestId`, never instead of it. */
  clientRequestId: string | null;
  /** The client's address (behind TRUSTED_PROXIES, the one the outermost trusted proxy saw): an anonymous client's budget. */
  clientAddress: string;
  /** This request's own fork: its identity map and logger context belong to this request only. */
  em: SqlEntityManager;
  /** From the bearer token, checked against the user as it is now (see `currentViewer`); null without a token. */
  viewer: Viewer | null;
  /** Per-request DataLoaders over `em`: batching and memoisation live and die with the request. */
  loaders: Loaders;
  /** Statements this request sent (counted by the ORM logger through `em`'s logger context). */
  sql: SqlStats;
  /** This request's query-cache scope (L1 memo + stats) over the shared cache; also bound to `em`. */
  cache: QueryCache;
  /** The Stripe SDK client; null when STRIPE_SECRET_KEY is unset (payment writes then refuse). */
  stripe: StripeClient | null;
  /** This app instance's payment writes (shared by its requests: one completion in flight per key). */
  payments: PaymentService;
  /** Payment changes for subscriptions, and the loaders an event shares among its subscribers. */
  events: PaymentEvents;
  /** A subscription's WebSocket (unset over HTTP): closed when its viewer may no longer connect. */
  connection?: { close(code: number, reason: string): void };
}

/** What subscriptions need of the app (see src/modules/realtime). */
export interface PaymentEvents {
  bus: PaymentEventBus;
  /**
   * The loaders one event's executions share on this instance, made at its first use: 100 subscribers
   * of a change cost one batch for their `Payment.user`, not 100. Authorization stays per subscriber
   * (it runs in the resolvers on what the loaders return).
   */
  loadersFor(event: PaymentEvent): Loaders;
  /** A subscriber fell so far behind that its stream was ended (for metrics). */
  noteSlowSubscriber(): void;
}

export interface ContextDeps {
  orm: MikroORM;
  tokens: TokenVerifier;
  /** Keep statement texts (debug responses, tests). */
  keepSqlTexts: boolean;
  /** Count statement shapes and note those repeated more often than this; 0 is off. */
  nPlusOneThreshold: number;
  /** The shared cache store (query results when `queryCacheEnabled`, and always the viewer's state). */
  cache: CacheService;
  /** CACHE_ENABLED: query results go through the cache. */
  queryCacheEnabled: boolean;
  stripe: StripeClient | null;
  payments: PaymentService;
  events: PaymentEvents;
  /** Read replicas (DATABASE_REPLICA_URLS); null without any. */
  routing: ReadRouting | null;
}

/** `Cache-Control: no-cache` (or `no-store`) from the client: read everything fresh. */
function wantsFreshData(header: string | string[] | undefined): boolean {
  const value = Array.isArray(header) ? header.join(',') : header;
  return value !== undefined && /\bno-(cache|store)\b/i.test(value);
}

/** Builds the per-request context from the HTTP headers. Throws UNAUTHENTICATED for a bad token. */
export async function buildContext(
  deps: ContextDeps,
  requestId: string,
  headers: Record<string, string | string[] | undefined>,
  clientAddress: string,
): Promise<Context> {
  const authorization = headers.authorization;
  const claims = await deps.tokens.viewerFromAuthorization(Array.isArray(authorization) ? authorization[0] : authorization);
  return contextFor(deps, requestId, claims, { fresh: wantsFreshData(headers['cache-control']), clientRequestId: clientRequestIdOf(headers), clientAddress });
}

/**
 * The context of one request (or one subscription operation): its fork, cache scope and loaders, and
 * the viewer checked against the user as they are now. `claims` come from a verified token.
 */
export async function contextFor(
  deps: ContextDeps,
  requestId: string,
  claims: Viewer | null,
  options: { fresh: boolean; clientRequestId?: string | null; clientAddress: string },
): Promise<Context> {
  const sql = new SqlStats({ keepTexts: deps.keepSqlTexts, nPlusOneThreshold: deps.nPlusOneThreshold });
  const em = attributedFork(deps.orm.em, requestId, sql);
  const cache = new QueryCache(deps.cache, { enabled: deps.queryCacheEnabled && !options.fresh, em });
  bindQueryCache(em, cache);
  const loaders = createLoaders(cache);
  let viewer: Viewer | null = null;
  if (claims) {
    let current: Awaited<ReturnType<typeof currentViewer>>;
    try {
      current = await currentViewer(claims, em, deps.cache, { fresh: options.fresh, dependencies: cache.dependencies });
    } catch (err) {
      // The request cannot be answered without its viewer: a 503 to retry, not a failed context (500).
      throw isDatabaseUnavailable(err) ? new ServiceUnavailableError(err) : err;
    }
    viewer = current.viewer;
    cache.actorId = viewer.id;
    loaders.primeUsers([current.row]);
  }
  // Reads may go to a replica that has replayed the viewer's own latest write (see src/db/replicas).
  if (deps.routing?.configured) cache.routeReads(deps.routing.forRequest(em, viewer?.id ?? null));
  return { requestId, clientRequestId: options.clientRequestId ?? null, clientAddress: options.clientAddress, em, viewer, loaders, sql, cache, stripe: deps.stripe, payments: deps.payments, events: deps.events };
}
