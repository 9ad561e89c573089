import { context, SpanStatusCode, trace, type Attributes, type Context as TraceContext, type Span } from '@opentelemetry/api';

/**
 * OpenTelemetry traces, off unless the standard settings turn them on (`OTEL_EXPORTER_OTLP_ENDPOINT` or
 * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`; `OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER` / `_ARG` as the SDK
 * reads them). On: the OpenTelemetry JS SDK exports over OTLP/HTTP, the maintained instrumentations
 * trace HTTP in and out (W3C `traceparent` accepted, and passed on to Stripe) and each pg statement,
 * and paygraph adds its own spans (GraphQL operation, DataLoader batches, cache lookups). Off: no SDK,
 * no context manager, and `tracingOn` keeps every helper below to one boolean test.
 */
export let tracingOn = false;

const tracer = () => trace.getTracer('paygraph');

/** Set by `src/tracing.ts` once the SDK runs; read on the hot path instead of asking the API. */
export function setTracingOn(on: boolean): void {
  tracingOn = on;
}

/** Whether the environment asks for traces. */
export function tracingRequested(env: NodeJS.ProcessEnv = process.env): boolean {
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) && env.OTEL_SDK_DISABLED !== 'true';
}

/** Runs `fn` inside a span (its child spans nest under it); ends it when `fn` settles. Off: just `fn`. */
export function traced<T>(name: string, attributes: Attributes, fn: (span: Span | null) => Promise<T>, parent?: TraceContext): Promise<T> {
  if (!tracingOn) return fn(null);
  const span = tracer().startSpan(name, { attributes }, parent ?? context.active());
  return context.with(trace.setSpan(parent ?? context.active(), span), async () => {
    try {
      return await fn(span);
    } catch (err) {
      span.recordException(err as Error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
      throw err;
    } finally {
      span.end();
    }
  });
}

/** The trace context active now (captured where a request starts, to parent work scheduled later). */
export function activeTraceContext(): TraceContext | undefined {
  return tracingOn ? context.active() : undefined;
}

/** The id of the trace now active, for log lines; undefined when tracing is off. */
export function currentTraceId(): string | undefined {
  if (!tracingOn) return undefined;
  const id = trace.getActiveSpan()?.spanContext().traceId;
  return id && !/^0+$/.test(id) ? id : undefined;
}

/** Adds attributes to the span now active (e.g. cache hits to a loader's batch span). */
export function annotateActiveSpan(attributes: Attributes): void {
  if (tracingOn) trace.getActiveSpan()?.setAttributes(attributes);
}

/** A DataLoader batch function that, with tracing on, runs in a span naming the loader and the batch size. */
export function tracedBatch<K, V>(loader: string, batch: (keys: readonly K[]) => Promise<V[]>): (keys: readonly K[]) => Promise<V[]> {
  return (keys) =>
    tracingOn ? traced(`dataloader.batch ${loader}`, { 'paygraph.loader': loader, 'paygraph.batch.size': keys.length }, () => batch(keys)) : batch(keys);
}
