import { createHash, timingSafeEqual } from 'node:crypto';
import type { ApolloServerPlugin } from '@apollo/server';
import type { FastifyInstance } from 'fastify';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { RequestScope } from './request-scope.js';
import type { LayerStats } from './cache/index.js';

export interface PoolStats {
  used: number;
  free: number;
  pending: number;
  max: number;
}

/** Client-chosen operation names become labels only when sane, and at most this many of them. */
const MAX_OPERATION_LABELS = 200;

/**
 * Prometheus metrics of one app instance, in a registry of its own: GraphQL operations (count and
 * duration by operation name and outcome), SQL statements per operation, cache hits/misses/errors,
 * DB pool usage, and the process metrics of prom-client.
 */
export function createMetrics(sources: {
  cacheTotals: () => LayerStats | null;
  pool: () => PoolStats | null;
  /** Statements by the server that ran them (`primary`, `replica1`...). */
  statementsByTarget?: () => ReadonlyMap<string, number>;
  /** The build id (core/build-id.ts), as a label of `paygraph_build_info`. */
  build?: string;
}) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

  if (sources.build) {
    new Gauge({ name: 'paygraph_build_info', help: 'The build this instance runs (cache entries are keyed by it)', labelNames: ['build'] as const, registers: [registry] }).set(
      { build: sources.build },
      1,
    );
  }
  const processFaults = new Counter({
    name: 'process_faults_total',
    help: 'Unhandled promise rejections and uncaught exceptions that reached the process (see docs/failure-modes.md)',
    labelNames: ['kind'] as const,
    registers: [registry],
  });

  const operations = new Counter({
    name: 'graphql_operations_total',
    help: 'GraphQL operations, by operation name and outcome',
    labelNames: ['operation', 'outcome'] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'graphql_operation_duration_seconds',
    help: 'GraphQL operation duration, by operation name and outcome',
    labelNames: ['operation', 'outcome'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  const statements = new Histogram({
    name: 'graphql_operation_sql_statements',
    help: 'SQL statements sent by one GraphQL operation',
    labelNames: ['operation'] as const,
    buckets: [0, 1, 2, 3, 4, 5, 8, 13, 21, 50],
    registers: [registry],
  });
  for (const [name, help, key] of [
    ['query_cache_hits_total', 'Query cache hits in the shared store', 'hits'],
    ['query_cache_misses_total', 'Query cache misses in the shared store', 'misses'],
    ['query_cache_errors_total', 'Query cache store errors and timeouts (reads fell back to PostgreSQL)', 'errors'],
  ] as const) {
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        const totals = sources.cacheTotals();
        this.reset();
        if (totals) this.inc(totals[key]);
      },
    });
  }
  new Counter({
    name: 'db_statements_total',
    help: 'SQL statements by the server that ran them: primary, or a read replica by name',
    labelNames: ['target'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const [target, n] of sources.statementsByTarget?.() ?? []) this.inc({ target }, n);
    },
  });
  for (const [name, help, key] of [
    ['db_pool_connections_used', 'Connections checked out of the pool', 'used'],
    ['db_pool_connections_free', 'Idle connections in the pool', 'free'],
    ['db_pool_pending_acquires', 'Requests waiting for a connection', 'pending'],
    ['db_pool_connections_max', 'Pool size limit (DB_POOL_MAX)', 'max'],
  ] as const) {
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        const pool = sources.pool();
        if (pool) this.set(pool[key]);
      },
    });
  }

  const labels = new Set<string>();
  const operationLabel = (name: string | null | undefined): string => {
    if (!name) return 'anonymous';
    if (!/^\w{1,64}$/.test(name)) return 'other';
    if (labels.has(name)) return name;
    if (labels.size >= MAX_OPERATION_LABELS) return 'other';
    labels.add(name);
    return name;
  };

  // The labelled series of each operation and outcome, resolved once: prom-client hashes the label
  // values on every call otherwise, three times per operation.
  const series = new Map<string, { operations: { inc(): void }; duration: { observe(v: number): void }; statements: { observe(v: number): void } }>();
  const seriesOf = (operationName: string | null | undefined, outcome: 'ok' | 'error') => {
    const operation = operationLabel(operationName);
    const key = `${outcome}:${operation}`;
    let found = series.get(key);
    if (!found) {
      found = { operations: operations.labels(operation, outcome), duration: duration.labels(operation, outcome), statements: statements.labels(operation) };
      series.set(key, found);
    }
    return found;
  };

  const plugin: ApolloServerPlugin<RequestScope> = {
    async requestDidStart() {
      const started = process.hrtime.bigint();
      let failed = false;
      return {
        async didEncounterErrors() {
          failed = true;
        },
        async willSendResponse({ operationName, contextValue }) {
          const series = seriesOf(operationName, failed ? 'error' : 'ok');
          series.operations.inc();
          series.duration.observe(Number(process.hrtime.bigint() - started) / 1e9);
          series.statements.observe(contextValue.sql.statements);
        },
      };
    },
  };

  /** An operation answered without running it (a response-cache hit): counted like any other. */
  const observeAnswered = (operationName: string | null, seconds: number) => {
    const { operations: count, duration: time, statements: sql } = seriesOf(operationName, 'ok');
    count.inc();
    time.observe(seconds);
    sql.observe(0);
  };

  /** A rejection no handler took, or an exception nothing caught, reached the process. */
  const noteProcessFault = (kind: 'unhandled_rejection' | 'uncaught_exception') => processFaults.inc({ kind });

  return { registry, plugin, observeAnswered, noteProcessFault };
}

const digest = (text: string) => createHash('sha256').update(text).digest();

/**
 * `GET /metrics`. With a token it needs `Authorization: Bearer <token>`, compared in constant time
 * (digests of equal length, so neither content nor length leaks through timing). Without one it is
 * served only when `public` says so (METRICS_PUBLIC=true, or outside production): fail closed.
 */
export function registerMetricsRoute(
  fastify: FastifyInstance,
  registry: Registry,
  access: { token: string | undefined; public: boolean },
): void {
  const expected = access.token ? digest(`Bearer ${access.token}`) : null;
  fastify.get('/metrics', async (request, reply) => {
    if (expected) {
      if (!timingSafeEqual(digest(String(request.headers.authorization ?? '')), expected)) {
        return reply.code(401).send({ error: 'metrics need Authorization: Bearer <METRICS_TOKEN>' });
      }
    } else if (!access.public) {
      return reply.code(403).send({ error: 'metrics are not public: set METRICS_TOKEN (or METRICS_PUBLIC=true)' });
    }
    return reply.type(registry.contentType).send(await registry.metrics());
  });
}

export type Metrics = ReturnType<typeof createMetrics>;
