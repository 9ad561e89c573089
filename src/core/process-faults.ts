/** The request an error was made for (tagged where a request's load fails), for the fault log. */
const requestOfError = new WeakMap<object, string>();

/** Notes that `error` came out of the work of request `requestId` (see `installProcessFaultPolicy`). */
export function noteErrorRequest(error: unknown, requestId: unknown): void {
  if (error !== null && typeof error === 'object' && typeof requestId === 'string' && !requestOfError.has(error)) requestOfError.set(error, requestId);
}

export interface ProcessFaultDeps {
  log: { error(obj: object, msg: string): void };
  /** Counts the fault (`process_faults_total{kind}` in /metrics). */
  noteFault(kind: 'unhandled_rejection' | 'uncaught_exception'): void;
  /** Drains and exits with this code (main.ts's shutdown). */
  shutdown(reason: string, exitCode: number): void;
}

/**
 * What the process does with a fault no handler took (docs/failure-modes.md):
 *
 * - An unhandled promise rejection is logged with its error and the request it came from (when a
 *   request's load made it), counted, and the process keeps serving. A rejected promise that nobody
 *   awaits cut no function short: the code that made it has moved on, so nothing is half-changed, and
 *   ending the process would fail every request in flight, on every instance at once when the cause
 *   is shared (a database stall reaches them all).
 * - An uncaught exception is logged and counted, and the process drains (readiness 503, in-flight
 *   requests finish) and exits 1, so its supervisor starts a fresh one: the throw cut a function off
 *   half-way, and whatever it was changing may be left inconsistent.
 *
 * Node's defaults would end the process at once for either, dropping every open connection.
 */
export function installProcessFaultPolicy(deps: ProcessFaultDeps): () => void {
  const onRejection = (reason: unknown) => {
    deps.noteFault('unhandled_rejection');
    const requestId = reason !== null && typeof reason === 'object' ? requestOfError.get(reason) : undefined;
    deps.log.error({ err: reason, requestId: requestId ?? null }, 'unhandled promise rejection (the process keeps serving)');
  };
  const onException = (error: unknown) => {
    deps.noteFault('uncaught_exception');
    deps.log.error({ err: error }, 'uncaught exception: draining, then exiting 1 for the supervisor to restart');
    deps.shutdown('uncaught exception', 1);
  };
  process.on('unhandledRejection', onRejection);
  process.on('uncaughtException', onException);
  return () => {
    process.off('unhandledRejection', onRejection);
    process.off('uncaughtException', onException);
  };
}
