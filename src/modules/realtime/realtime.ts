import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { WebSocketServer, type WebSocket } from 'ws';
import { useServer } from 'graphql-ws/use/ws';
import {
  getOperationAST,
  GraphQLError,
  Kind,
  parse,
  specifiedRules,
  subscribe,
  validate,
  type DocumentNode,
  type FragmentDefinitionNode,
  type GraphQLSchema,
  type ValidationRule,
} from 'graphql';
import type { MikroORM } from '@mikro-orm/postgresql';
import { Counter, Gauge, type Registry } from 'prom-client';
import { contextFor, type ContextDeps, type PaymentEvents } from '../../context.js';
import { createLoaders, type Loaders } from '../../loaders.js';
import { Payment } from '../payment/payment.entity.js';
import type { TokenVerifier } from '../auth/auth.js';
import { PaymentEventBus, type PaymentEvent } from './payment-events.js';
import { requestedHash, TRUSTED_DOCUMENT_REQUIRED, type TrustedDocuments } from '../documents/trusted-documents.js';
import { bindQueryCache, QueryCache, type CacheService, type WriteInfo } from '../../core/cache/index.js';
import { attributedFork } from '../../core/sql-stats.js';
import { currentViewer } from '../auth/viewer.js';
import { operationCost } from '../../core/security.js';
import { formatClientError } from '../../core/errors.js';
import type { Limits } from '../limits/limits.js';

export const GRAPHQL_WS_PATH = '/graphql';

export interface RealtimeSettings {
  /** Subscriptions one socket may have at once. */
  subscriptionsPerSocket: number;
  /** Sockets this instance accepts at once; more are refused at the upgrade (HTTP 503). */
  maxSockets: number;
  /** A socket that sends no `connection_init` within this is closed (4408). */
  connectionInitTimeoutMs: number;
  /** Ping every this often; a socket that does not answer a ping by the next one is terminated. */
  keepAliveMs: number;
  /** A socket with more than this waiting to be sent (it stopped reading) is dropped. */
  maxBufferedBytes: number;
  maxTokens: number;
  maxCost: number;
}

export interface RealtimeDeps {
  orm: MikroORM;
  cache: CacheService;
  queryCacheEnabled: boolean;
  tokens: TokenVerifier;
  redisUrl: string | undefined;
  namespace: string;
  isProduction: boolean;
  settings: RealtimeSettings;
  /** The same extra validation rules as HTTP operations (GraphQL Armor's depth, aliases, directives). */
  validationRules: readonly ValidationRule[];
  /** Budgets of connection attempts per address and of subscriptions per viewer; null: none. */
  limits: Pick<Limits, 'allowConnection' | 'allowSubscription'> | null;
  /** The client's address of an upgrade request (TRUSTED_PROXIES applied). */
  addressOf: (peer: string | undefined, headers: IncomingMessage['headers']) => string;
  registry: Registry;
  log: { warn(obj: object, msg: string): void; error(obj: object, msg: string): void };
}

/** Per-socket state graphql-ws keeps in `ctx.extra`. */
interface SocketState {
  socket: WebSocket;
  request: IncomingMessage;
  claims?: { id: number; role: string } & Record<string, unknown>;
  expiryTimer?: NodeJS.Timeout;
}

/**
 * Subscriptions over graphql-ws (`graphql-transport-ws`) on the HTTP server's port and `/graphql`
 * path, fed by a `PaymentEventBus` (Redis pub/sub across instances when configured), with the limits
 * and metrics of a production endpoint. Payment writes publish through the cache's invalidation hook:
 * a committed write that bumps `payment:<id>` publishes that payment's row once.
 */
export function createRealtime(deps: RealtimeDeps) {
  const bus = new PaymentEventBus({
    redisUrl: deps.redisUrl,
    namespace: deps.namespace,
    onError: (message, err) => deps.log.warn({ err }, message),
  });

  const sharedLoaders = new WeakMap<PaymentEvent, Loaders>();
  let slowSubscribers = 0;
  const events: PaymentEvents = {
    noteSlowSubscriber() {
      slowSubscribers++;
    },
    bus,
    loadersFor(event) {
      let loaders = sharedLoaders.get(event);
      if (!loaders) {
        const em = attributedFork(deps.orm.em, `event:payment:${event.payment.id}`);
        const cache = new QueryCache(deps.cache, { enabled: deps.queryCacheEnabled, em });
        bindQueryCache(em, cache);
        loaders = createLoaders(cache);
        sharedLoaders.set(event, loaders);
      }
      return loaders;
    },
  };

  // A write is committed and known by its tags when it invalidates them: publish each payment it changed.
  deps.cache.onInvalidate(paymentPublisher(deps.orm, bus));

  let activeSubscriptions = 0;
  // Counts kept by the bus and the streams are read when metrics are scraped.
  let lastPublished = 0;
  let lastSlowDrops = 0;
  const metrics = {
    sockets: new Gauge({
      name: 'graphql_ws_sockets_open',
      help: 'WebSocket connections open on this instance',
      registers: [deps.registry],
      collect() {
        this.set(wss.clients.size);
      },
    }),
    subscriptions: new Gauge({
      name: 'graphql_ws_subscriptions_active',
      help: 'Subscriptions active on this instance',
      registers: [deps.registry],
      collect() {
        this.set(activeSubscriptions);
      },
    }),
    published: new Counter({
      name: 'payment_events_published_total',
      help: 'Payment change events published by this instance',
      registers: [deps.registry],
      collect() {
        this.inc(bus.counts.published - lastPublished);
        lastPublished = bus.counts.published;
      },
    }),
    delivered: new Counter({ name: 'payment_events_delivered_total', help: 'Subscription results sent to clients by this instance', registers: [deps.registry] }),
    drops: new Counter({
      name: 'graphql_ws_drops_total',
      help: 'Sockets and subscriptions dropped for not reading, by reason',
      labelNames: ['reason'] as const,
      registers: [deps.registry],
      collect() {
        this.inc({ reason: 'slow_subscriber' }, slowSubscribers - lastSlowDrops);
        lastSlowDrops = slowSubscribers;
      },
    }),
    refused: new Counter({ name: 'graphql_ws_refused_total', help: 'WebSocket upgrades refused, by reason', labelNames: ['reason'] as const, registers: [deps.registry] }),
  };

  let accepting = true;
  const wss = new WebSocketServer({ noServer: true, maxPayload: 100 * 1024 });
  const { subscriptionsPerSocket, maxTokens, maxCost } = deps.settings;

  let schema: GraphQLSchema;
  let contextDeps: ContextDeps;
  let trusted: TrustedDocuments | null = null;

  const server = useServer<Record<string, unknown>, Partial<SocketState>>(
    {
      connectionInitWaitTimeout: deps.settings.connectionInitTimeoutMs,
      isProd: deps.isProduction,
      // The bearer token travels in connectionParams.authorization; anything wrong closes with 4403.
      onConnect: async (ctx) => {
        const header = ctx.connectionParams?.authorization;
        try {
          const verified = await deps.tokens.verifyAuthorization(typeof header === 'string' ? header : undefined);
          if (!verified) return false;
          // Deactivated or deleted users are refused here as on HTTP.
          await currentViewer(verified.viewer, attributedFork(deps.orm.em, 'ws:connect'), deps.cache, { fresh: false });
          ctx.extra.claims = verified.viewer as SocketState['claims'];
          const socket = ctx.extra.socket!;
          const untilExpiry = verified.expiresAtMs - Date.now();
          ctx.extra.expiryTimer = setTimeout(() => socket.close(4403, 'Token expired'), Math.max(0, untilExpiry));
          ctx.extra.expiryTimer.unref();
          return true;
        } catch {
          return false;
        }
      },
      onDisconnect: (ctx) => clearTimeout(ctx.extra.expiryTimer),
      onClose: (ctx) => clearTimeout(ctx.extra.expiryTimer),
      onSubscribe: async (ctx, id, payload) => {
        if (Object.keys(ctx.subscriptions).length > subscriptionsPerSocket) {
          return [new GraphQLError(`At most ${subscriptionsPerSocket} subscriptions per socket`, { extensions: { code: 'SUBSCRIPTION_LIMIT' } })];
        }
        let query = payload.query;
        if (trusted) {
          const hash = requestedHash(payload as { query?: unknown; extensions?: unknown });
          const text = hash ? trusted.get(hash) : undefined;
          if (text === undefined) {
            return [new GraphQLError('Only trusted documents run on this server: subscribe with an operation of its manifest', { extensions: { code: TRUSTED_DOCUMENT_REQUIRED } })];
          }
          query = text;
        }
        let document: DocumentNode;
        try {
          document = parse(query, { maxTokens });
        } catch (err) {
          return [err instanceof GraphQLError ? withCode('GRAPHQL_PARSE_FAILED')(err) : new GraphQLError('Syntax Error')];
        }
        const errors = validate(schema, document, [...specifiedRules, ...deps.validationRules]);
        if (errors.length > 0) return errors.map(withCode('GRAPHQL_VALIDATION_FAILED'));
        const operation = getOperationAST(document, payload.operationName);
        if (!operation) return [withCode('OPERATION_RESOLUTION_FAILURE')(new GraphQLError('Unknown operation'))];
        if (operation.operation !== 'subscription') {
          return [withCode('BAD_REQUEST')(new GraphQLError('Only subscriptions go over WebSocket; send queries and mutations over HTTP'))];
        }
        const fragments: Record<string, FragmentDefinitionNode> = {};
        for (const d of document.definitions) if (d.kind === Kind.FRAGMENT_DEFINITION) fragments[d.name.value] = d;
        const cost = operationCost(schema, operation.selectionSet, schema.getSubscriptionType()!, fragments, payload.variables ?? {});
        if (cost > maxCost) {
          return [new GraphQLError(`Query is too expensive: cost ${cost} is over the limit of ${maxCost} (lists count as many times as their "first")`, { extensions: { code: 'GRAPHQL_VALIDATION_FAILED', cost, maxCost } })];
        }
        if (deps.limits && ctx.extra.claims) {
          const taken = await deps.limits.allowSubscription(ctx.extra.claims.id);
          if (!taken.allowed) {
            return [
              new GraphQLError(`Throttled: too many subscriptions started; retry in ${taken.retryAfterSeconds} s`, {
                extensions: { code: 'THROTTLED', retryAfterSeconds: taken.retryAfterSeconds },
              }),
            ];
          }
        }
        const request = ctx.extra.request!;
        const contextValue = await contextFor(contextDeps, `ws:${id}`, ctx.extra.claims as never, { fresh: false, clientAddress: deps.addressOf(request.socket.remoteAddress, request.headers) });
        const socket = ctx.extra.socket!;
        contextValue.connection = { close: (code, reason) => socket.close(code, reason) };
        return { schema, document, operationName: payload.operationName, variableValues: payload.variables, contextValue };
      },
      subscribe: (args) => subscribe(args),
      onOperation: () => {
        activeSubscriptions++;
      },
      onComplete: () => {
        activeSubscriptions = Math.max(0, activeSubscriptions - 1);
      },
      onNext: (ctx, _id, _payload, _args, result) => {
        const socket = ctx.extra.socket!;
        // A client that stopped reading is dropped rather than buffered for without bound.
        if (socket.bufferedAmount > deps.settings.maxBufferedBytes) {
          metrics.drops.inc({ reason: 'not_reading' });
          socket.terminate();
          return;
        }
        metrics.delivered.inc();
        if (!result.errors?.length) return;
        return { ...result, errors: result.errors.map((e) => formatClientError(e.toJSON(), e, deps.isProduction)) };
      },
    },
    wss,
    deps.settings.keepAliveMs,
  );

  const onUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = (request.url ?? '').split('?')[0];
    if (path !== GRAPHQL_WS_PATH) {
      socket.destroy();
      return;
    }
    const refuseUpgrade = (status: string, reason: string) => {
      metrics.refused.inc({ reason });
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    };
    if (!accepting) return refuseUpgrade('503 Service Unavailable', 'draining');
    if (wss.clients.size >= deps.settings.maxSockets) return refuseUpgrade('503 Service Unavailable', 'max_sockets');
    const accept = () => wss.handleUpgrade(request, socket, head, (ws) => wss.emit('connection', ws, request));
    if (!deps.limits) return accept();
    // The socket is ours until ws takes it: an error on it meanwhile (the client went away) is no fault.
    const ignore = () => {};
    socket.on('error', ignore);
    deps.limits.allowConnection(deps.addressOf(request.socket.remoteAddress, request.headers)).then(
      (taken) => {
        socket.off('error', ignore);
        if (socket.destroyed) return;
        if (!taken.allowed) return refuseUpgrade(`429 Too Many Requests\r\nRetry-After: ${taken.retryAfterSeconds}`, 'throttled');
        accept();
      },
      (err: unknown) => {
        socket.off('error', ignore);
        deps.log.error({ err }, 'rate limits: a connection attempt could not be counted');
        socket.destroy();
      },
    );
  };

  return {
    events,
    bus,
    /** Connects the bus and starts answering WebSocket upgrades on the app's HTTP server. */
    async attach(fastify: FastifyInstance, appSchema: GraphQLSchema, ctxDeps: ContextDeps, trustedDocuments: TrustedDocuments | null = null): Promise<void> {
      schema = appSchema;
      contextDeps = ctxDeps;
      trusted = trustedDocuments;
      await bus.start();
      fastify.server.on('upgrade', onUpgrade);
    },
    /** The open sockets (operators and tests can look at their state, e.g. `bufferedAmount`). */
    get sockets(): ReadonlySet<WebSocket> {
      return wss.clients;
    },
    get activeSubscriptions(): number {
      return activeSubscriptions;
    },
    /** New sockets are refused from now on (503); open ones keep working until `close`. */
    beginDrain(): void {
      accepting = false;
    },
    /** Closes every socket with 1001 (going away: clients reconnect elsewhere), then the bus. */
    async close(): Promise<void> {
      accepting = false;
      for (const socket of wss.clients) socket.close(1001, 'Server is shutting down');
      await server.dispose();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      await bus.close();
    },
  };
}

export type Realtime = ReturnType<typeof createRealtime>;

/**
 * What publishes payment changes from committed writes: it loads the row of each payment the write
 * changed (one statement) and publishes it. Used by the app and by `npm run reconcile`.
 */
export function paymentPublisher(orm: MikroORM, bus: PaymentEventBus): (tags: readonly string[], write: WriteInfo) => Promise<void> {
  return async (_tags, write) => {
    const ids = [...new Set((write.change.payments ?? []).map((p) => p.id))];
    if (ids.length === 0) return;
    const rows = await attributedFork(orm.em, 'event:publish').getRepository(Payment).findRowsByIds(ids);
    for (const payment of rows) await bus.publish({ payment });
  };
}

function withCode(code: string) {
  return (error: GraphQLError): GraphQLError =>
    new GraphQLError(error.message, { nodes: error.nodes, source: error.source, positions: error.positions, path: error.path, extensions: { ...error.extensions, code } });
}
