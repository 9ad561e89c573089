import cors from '@fastify/cors';
import type { FastifyInstance } from 'fastify';

/** Request headers a browser client of the API may send (its preflight asks for them). */
const ALLOWED_HEADERS = ['authorization', 'content-type', 'x-request-id', 'traceparent', 'apollo-require-preflight', 'x-apollo-operation-name'];

/** Response headers a browser client may read: the request's ids, the caches' verdict, its budget, when to retry. */
const EXPOSED_HEADERS = ['x-request-id', 'x-client-request-id', 'x-response-cache', 'retry-after', 'x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-used', 'x-ratelimit-reset'];

/**
 * Cross-origin requests from browsers (CORS_ORIGINS): pages of the listed origins may call the API with
 * their bearer token, and read its answers and the headers above; preflights are answered (cached by the
 * browser for 10 minutes). Any other origin gets no CORS header, so the browser keeps the answer from
 * its page. Unset: nothing is registered, and browsers allow same-origin calls only.
 */
export async function registerCors(fastify: FastifyInstance, origins: readonly string[]): Promise<void> {
  if (origins.length === 0) return;
  const allowed = new Set(origins);
  await fastify.register(cors, {
    origin: (origin, callback) => callback(null, origin !== undefined && allowed.has(origin)),
    methods: ['GET', 'POST', 'OPTIONS'],
    allowedHeaders: ALLOWED_HEADERS,
    exposedHeaders: EXPOSED_HEADERS,
    // Credentials: cookies are not used, but a client that sends `credentials: 'include'` must not fail.
    credentials: true,
    maxAge: 600,
  });
}
