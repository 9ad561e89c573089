import { Histogram, type Registry } from 'prom-client';
import { sqlShape, type StatementEvent } from './sql-stats.js';

/** Distinct statement shapes given their own histogram label; the rest count as `other`. */
const MAX_SHAPE_LABELS = 200;

/**
 * Watches every statement: a histogram of durations by statement shape (`db_statement_duration_seconds`,
 * at most 200 shapes, then `other`), and one warn line per statement that took `slowMs` or more, with
 * its shape, duration, target server, the GraphQL path that sent it and the request id.
 */
export function statementMonitor(options: {
  slowMs: number;
  registry: Registry;
  log: { warn(obj: object, msg: string): void };
  /** Which server ran it: 'primary' until the data tier has more than one. */
  target?: string;
}): (event: StatementEvent) => void {
  const target = options.target ?? 'primary';
  const durations = new Histogram({
    name: 'db_statement_duration_seconds',
    help: 'SQL statement durations, by statement shape (literals folded) and target server',
    labelNames: ['shape', 'target'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5, 5],
    registers: [options.registry],
  });
  const labelled = new Set<string>();
  return (event) => {
    const shape = sqlShape(event.sql);
    let label = shape;
    if (!labelled.has(shape)) {
      if (labelled.size >= MAX_SHAPE_LABELS) label = 'other';
      else labelled.add(shape);
    }
    durations.observe({ shape: label, target }, event.durationMs / 1000);
    if (event.durationMs >= options.slowMs) {
      options.log.warn({ shape, durationMs: event.durationMs, target, path: event.path, requestId: event.requestId }, 'slow SQL statement');
    }
  };
}
