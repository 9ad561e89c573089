import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import type { Config } from '../config.js';
import { registerCors } from '../modules/access/cors.js';
import { clientRequestIdOf } from '../core/request-id.js';
import { isDatabaseUnavailable } from '../core/db-errors.js';
import { RETRY_AFTER_SECONDS } from '../core/errors.js';

export interface HttpOptions {
  /** Where log lines go instead of stdout (tests read them). */
  logStream?: { write(line: string): void };
}

/** JSON lines (pino) in production and tests; pretty lines in development when pino-pretty is installed. */
function loggerOptions(config: Config, stream: HttpOptions['logStream']) {
  if (config.logLevel === 'silent') return false;
  if (stream) return { level: config.logLevel, stream };
  if (config.env === 'development' && canResolve('pino-pretty')) {
    return { level: config.logLevel, transport: { target: 'pino-pretty', options: { translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname' } } };
  }
  return { level: config.logLevel };
}

function canResolve(name: string): boolean {
  try {
    createRequire(import.meta.url).resolve(name);
    return true;
  } catch {
    return false;
  }
}

/**
 * Step 2: the HTTP server, before any route: its logger, request ids, CORS, errors outside GraphQL in
 * GraphQL's shape, and the size of batches. It never listens (`main.ts` does).
 */
export async function createHttpServer(config: Config, options: HttpOptions): Promise<FastifyInstance> {
  const fastify = Fastify({
    logger: loggerOptions(config, options.logStream),
    bodyLimit: 100 * 1024,
    // One line per GraphQL operation is what operators want, not two per HTTP request.
    logController: new LogController({ disableRequestLogging: true }),
    // Requests that arrive while closing are still served (with Connection: close); see main.ts.
    return503OnClosing: false,
    // The request's identity is made here, whatever the client sends (see core/request-id.ts).
    genReqId: () => randomUUID(),
  });
  await registerCors(fastify, config.corsOrigins);
  fastify.addHook('onSend', async (request, reply) => {
    void reply.header('x-request-id', request.id);
    // The client's own id, recorded beside ours, goes back to it under its own name.
    const client = clientRequestIdOf(request.headers);
    if (client) void reply.header('x-client-request-id', client);
  });
  // Errors before GraphQL runs (unparsable JSON, media type, body too large...) answer in GraphQL's
  // shape with a code; anything unexpected is logged and masked.
  fastify.setErrorHandler((error: { statusCode?: number; message: string }, request, reply) => {
    const status = error.statusCode && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 500;
    if (status === 500 && isDatabaseUnavailable(error)) {
      // A route outside GraphQL (the Stripe webhook) while PostgreSQL is away: Stripe retries a 503.
      request.log.warn({ err: error }, 'database unavailable');
      return reply
        .code(503)
        .header('retry-after', String(RETRY_AFTER_SECONDS))
        .send({ errors: [{ message: 'The database is unavailable; retry shortly', extensions: { code: 'SERVICE_UNAVAILABLE', requestId: request.id } }] });
    }
    if (status === 500) {
      request.log.error({ err: error }, 'unhandled error');
      return reply.code(500).send({ errors: [{ message: 'Internal server error', extensions: { code: 'INTERNAL_SERVER_ERROR', requestId: request.id } }] });
    }
    return reply.code(status).send({ errors: [{ message: error.message, extensions: { code: 'BAD_REQUEST' } }] });
  });
  fastify.addHook('preHandler', async (request, reply) => {
    // Apollo has no size limit for batched (array) requests: refuse large ones before any work.
    if (request.routeOptions.url === '/graphql' && Array.isArray(request.body) && request.body.length > config.graphql.batchMax) {
      const message = config.graphql.batchMax === 0 ? 'Batched requests are not accepted' : `At most ${config.graphql.batchMax} operations per batch`;
      await reply.code(400).send({ errors: [{ message, extensions: { code: 'BAD_REQUEST' } }] });
    }
  });
  return fastify;
}
