import { HeaderMap } from '@apollo/server';
import { GraphQLError, type GraphQLFormattedError } from 'graphql';
import { isDatabaseUnavailable } from './db-errors.js';

/** What a 503 tells clients (and proxies) to wait before retrying: a stall or a restart is short. */
export const RETRY_AFTER_SECONDS = 1;

/** Codes every client can rely on; user errors carry one of these in `extensions.code`. */
export type ErrorCode =
  | 'BAD_USER_INPUT'
  | 'UNAUTHENTICATED'
  | 'FORBIDDEN'
  | 'NOT_FOUND'
  | 'CONFLICT'
  | 'PAYMENTS_NOT_CONFIGURED'
  | 'PAYMENT_PROVIDER_UNAVAILABLE'
  | 'SERVICE_UNAVAILABLE'
  | 'THROTTLED'
  | 'PAYMENT_ATTEMPTS_EXCEEDED'
  | 'INTERNAL_SERVER_ERROR';

/**
 * A user error. It carries no HTTP status: a field error leaves the response 200 with partial data,
 * as GraphQL clients expect. Only request-level failures (a bad token) set one.
 */
abstract class CodedError extends GraphQLError {
  constructor(message: string, code: ErrorCode, extensions: Record<string, unknown> = {}) {
    super(message, { extensions: { code, ...extensions } });
  }
}

export class BadUserInputError extends CodedError {
  constructor(message: string, extra: Record<string, unknown> = {}) {
    super(message, 'BAD_USER_INPUT', extra);
  }
}

export class UnauthenticatedError extends CodedError {
  constructor(message = 'Authentication required: send an Authorization: Bearer <token> header') {
    super(message, 'UNAUTHENTICATED');
  }
}

/** A token that is present but unusable fails the whole request with HTTP 401. */
export class InvalidTokenError extends CodedError {
  constructor(message: string) {
    super(message, 'UNAUTHENTICATED', { http: { status: 401 } });
  }
}

export class ForbiddenError extends CodedError {
  constructor(message = 'This operation needs the ADMIN role') {
    super(message, 'FORBIDDEN');
  }
}

/** Also what a viewer gets for a record they may not see: its existence is not revealed. */
export class NotFoundError extends CodedError {
  constructor(what: string) {
    super(`${what} not found`, 'NOT_FOUND');
  }
}

export class ConflictError extends CodedError {
  constructor(message: string) {
    super(message, 'CONFLICT');
  }
}

export class PaymentsNotConfiguredError extends CodedError {
  constructor() {
    super('Payments are not configured on this server (STRIPE_SECRET_KEY is unset)', 'PAYMENTS_NOT_CONFIGURED');
  }
}

/** Stripe could not be reached or failed; nothing is lost, and a retry with the same key completes. */
export class PaymentProviderUnavailableError extends CodedError {
  constructor(message = 'The payment provider is unavailable; retry with the same idempotencyKey') {
    super(message, 'PAYMENT_PROVIDER_UNAVAILABLE');
  }
}

/**
 * PostgreSQL is down, unreachable or too slow for the request to be answered at all (its viewer could
 * not be read, say): HTTP 503 with Retry-After, as a proxy or client retries it. The driver's error
 * stays on `originalError` for the log; clients get this message only.
 */
export class ServiceUnavailableError extends GraphQLError {
  constructor(originalError?: unknown, message = 'The database is unavailable; retry shortly') {
    super(message, {
      originalError: originalError instanceof Error ? originalError : undefined,
      extensions: { code: 'SERVICE_UNAVAILABLE', http: { status: 503, headers: new HeaderMap([['retry-after', String(RETRY_AFTER_SECONDS)]]) } },
    });
  }
}

/**
 * The client spent its cost budget (src/modules/limits): HTTP 429 with Retry-After, and the seconds to
 * wait in `extensions.retryAfterSeconds`. Nothing of the operation ran.
 */
export class ThrottledError extends GraphQLError {
  constructor(message: string, retryAfterSeconds: number, extensions: Record<string, unknown> = {}) {
    super(message, {
      extensions: { code: 'THROTTLED', retryAfterSeconds, ...extensions, http: { status: 429, headers: new HeaderMap([['retry-after', String(retryAfterSeconds)]]) } },
    });
  }
}

/**
 * A user's new payment refused to stop card testing (too many attempts in a minute, or too many
 * failed payments lately): a field error, audited, with the seconds until one is accepted again.
 */
export class PaymentAttemptsExceededError extends CodedError {
  constructor(message: string, reason: 'attempts' | 'failures', retryAfterSeconds: number) {
    super(message, 'PAYMENT_ATTEMPTS_EXCEEDED', { reason, retryAfterSeconds });
  }
}

/** Codes whose errors reach clients unchanged; anything else is masked in production. */
export const USER_ERROR_CODES: ReadonlySet<string> = new Set<ErrorCode>([
  'BAD_USER_INPUT',
  'UNAUTHENTICATED',
  'FORBIDDEN',
  'NOT_FOUND',
  'CONFLICT',
  'PAYMENTS_NOT_CONFIGURED',
  'PAYMENT_PROVIDER_UNAVAILABLE',
  'SERVICE_UNAVAILABLE',
  'THROTTLED',
  'PAYMENT_ATTEMPTS_EXCEEDED',
]);

/**
 * What a client sees of an error: PostgreSQL being away becomes SERVICE_UNAVAILABLE (retryable, no
 * driver text); in production, anything that is not a coded user error becomes a bare
 * INTERNAL_SERVER_ERROR (the request id is added by `errorResponsePlugin`, the log keeps the stack).
 */
export function formatClientError(formatted: GraphQLFormattedError, error: unknown, isProduction: boolean): GraphQLFormattedError {
  if (isDatabaseUnavailable(error)) {
    return {
      message: 'The database is unavailable; retry shortly',
      ...(formatted.locations ? { locations: formatted.locations } : {}),
      ...(formatted.path ? { path: formatted.path } : {}),
      extensions: { code: 'SERVICE_UNAVAILABLE' },
    };
  }
  return maskError(formatted, isProduction);
}

/** Apollo's own codes for a bad request (parse, validation, operation, persisted query): the client's. */
export const APOLLO_REQUEST_ERROR_CODES: ReadonlySet<string> = new Set([
  'GRAPHQL_PARSE_FAILED',
  'GRAPHQL_VALIDATION_FAILED',
  'BAD_REQUEST',
  'OPERATION_RESOLUTION_FAILURE',
  'PERSISTED_QUERY_NOT_FOUND',
  'PERSISTED_QUERY_NOT_SUPPORTED',
]);

/** A coded error the client caused (ours or Apollo's): shown to clients as it is, not logged as a fault. */
export function isClientErrorCode(code: unknown): boolean {
  return typeof code === 'string' && (USER_ERROR_CODES.has(code) || APOLLO_REQUEST_ERROR_CODES.has(code));
}

/** In production, anything that is not a coded user error reaches the client as a bare 500-class error. */
export function maskError(formatted: GraphQLFormattedError, isProduction: boolean): GraphQLFormattedError {
  const code = formatted.extensions?.code;
  if (!isProduction) return formatted;
  // Apollo's own request errors (parse, validation, bad request) are the client's and safe to show.
  if (isClientErrorCode(code)) {
    const { stacktrace: _stack, ...extensions } = formatted.extensions ?? {};
    return { ...formatted, extensions };
  }
  // Where it happened is the client's own query, not an internal: keep it.
  return {
    message: 'Internal server error',
    ...(formatted.locations ? { locations: formatted.locations } : {}),
    ...(formatted.path ? { path: formatted.path } : {}),
    extensions: { code: 'INTERNAL_SERVER_ERROR' },
  };
}
