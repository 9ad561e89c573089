/**
 * Starts OpenTelemetry when the environment asks for it (see src/core/tracing.ts). Imported first by
 * main.ts and started synchronously, so that `http` and `pg` are patched before anything loads them.
 */
import { NodeSDK } from '@opentelemetry/sdk-node';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { HttpInstrumentation } from '@opentelemetry/instrumentation-http';
import { PgInstrumentation } from '@opentelemetry/instrumentation-pg';
import { trace } from '@opentelemetry/api';
import { setTracingOn, tracingRequested } from './core/tracing.js';
import { sqlShape } from './core/sql-stats.js';

export interface TracingHandle {
  /** Exports what is buffered (tests, shutdown). */
  flush(): Promise<void>;
  shutdown(): Promise<void>;
}

/** Starts the SDK when the environment asks for it; null otherwise. */
export function startTracing(env: NodeJS.ProcessEnv = process.env): TracingHandle | null {
  if (!tracingRequested(env)) return null;
  // Traces only: metrics are Prometheus' (/metrics) and logs are pino's, so the SDK exports neither.
  env.OTEL_METRICS_EXPORTER ??= 'none';
  env.OTEL_LOGS_EXPORTER ??= 'none';
  const sdk = new NodeSDK({
    serviceName: env.OTEL_SERVICE_NAME ?? 'paygraph',
    traceExporter: new OTLPTraceExporter(),
    instrumentations: [
      new HttpInstrumentation({
        // Health checks and scrapes would be most of the traces, and tell nothing.
        ignoreIncomingRequestHook: (request) => /^\/(healthz|readyz|metrics)\b/.test(request.url ?? ''),
      }),
      new PgInstrumentation({
        requireParentSpan: true,
        requestHook: (span, info) => {
          // Statements travel with their values inlined (MikroORM): traces keep the shape only, so no
          // email, id or amount leaves the process in a span.
          const shape = sqlShape(info.query.text);
          span.setAttribute('db.query.text', shape);
          span.setAttribute('db.query.shape', shape);
          span.setAttribute('paygraph.db.target', 'primary');
        },
        responseHook: (span, info) => {
          const rows = (info.data as { rowCount?: number | null }).rowCount;
          if (typeof rows === 'number') span.setAttribute('db.response.returned_rows', rows);
        },
      }),
    ],
  });
  sdk.start();
  setTracingOn(true);
  return {
    async flush() {
      const provider = trace.getTracerProvider() as { forceFlush?: () => Promise<void>; getDelegate?: () => { forceFlush?: () => Promise<void> } };
      const delegate = provider.getDelegate?.();
      await (delegate?.forceFlush ? delegate.forceFlush() : provider.forceFlush?.());
    },
    async shutdown() {
      setTracingOn(false);
      await sdk.shutdown();
    },
  };
}

/** This process's tracing, started at import when the environment asks for it. */
export const tracing = startTracing();
