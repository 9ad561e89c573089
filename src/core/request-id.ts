const CLIENT_REQUEST_ID = /^[\w.:-]{1,128}$/;

/**
 * The client's `x-request-id` when it is a sane token (1-128 of `[A-Za-z0-9_.:-]`), else null. It is
 * recorded beside the request's own id (a server-made UUID: the identity in the audit log, the logs
 * and traces), never instead of it: a client could otherwise write any id into the audit trail, or
 * one that another request has.
 */
export function clientRequestIdOf(headers: Record<string, string | string[] | undefined>): string | null {
  const value = headers['x-request-id'];
  return typeof value === 'string' && CLIENT_REQUEST_ID.test(value) ? value : null;
}
