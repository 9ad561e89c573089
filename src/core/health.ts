import type { FastifyInstance } from 'fastify';
import type { MikroORM } from '@mikro-orm/postgresql';
import type { CacheService } from './cache/index.js';

const CHECK_TIMEOUT_MS = 1000;

async function timed(check: () => Promise<unknown>): Promise<'ok' | string> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      check(),
      new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS))),
    ]);
    return 'ok';
  } catch (err) {
    return (err as Error).message?.split('\n')[0] || 'failed';
  } finally {
    clearTimeout(timer);
  }
}

/**
 * `GET /healthz`: liveness, no I/O. `GET /readyz`: PostgreSQL answers `select 1` and, when configured,
 * Redis answers PING, each within 1 s, and the body says what failed. Without PostgreSQL it is 503.
 * Without Redis it stays 200, marked `degraded`: the cache fails open and every request is still
 * served, so taking every instance out of rotation for a cache outage would turn it into a full one.
 * Cost budgets counted in each instance while Redis is away (`checks.limits`) are degraded too.
 * While draining for shutdown it is 503, so load balancers stop sending traffic.
 */
export function registerHealthRoutes(
  fastify: FastifyInstance,
  deps: {
    orm: MikroORM;
    cache: CacheService | null;
    /** The build id, reported so an operator sees which version each instance runs. */
    build?: string;
    isDraining: () => boolean;
    /** Read replicas' state (from their last check); null without replicas. */
    replicas?: (() => { name: string; healthy: boolean; lagMs: number | null; problem: string | null }[]) | null;
    /** Where cost budgets are counted: 'ok' (shared), why they are local, or null (no shared store). */
    limits?: (() => Promise<'ok' | string | null>) | null;
  },
): void {
  fastify.get('/healthz', async () => ({ status: 'ok' }));
  fastify.get('/readyz', async (_request, reply) => {
    const [postgres, redis, limits] = await Promise.all([
      timed(() => deps.orm.em.getConnection().execute('select 1')),
      deps.cache ? deps.cache.ping() : Promise.resolve(null),
      deps.limits ? deps.limits() : Promise.resolve(null),
    ]);
    const checks: Record<string, string> = { postgres };
    if (redis !== null) checks.redis = redis;
    if (limits !== null) checks.limits = limits;
    // A replica out of the rotation degrades nothing but speed: its reads go to the primary.
    const replicas = deps.replicas?.().map((r) => ({ name: r.name, status: r.healthy ? 'ok' : 'degraded', lagMs: r.lagMs, ...(r.problem ? { problem: r.problem } : {}) }));
    const draining = deps.isDraining();
    const ready = !draining && postgres === 'ok';
    const degraded = (redis !== null && redis !== 'ok') || (limits !== null && limits !== 'ok') || replicas?.some((r) => r.status !== 'ok');
    const status = draining ? 'draining' : !ready ? 'unavailable' : degraded ? 'degraded' : 'ready';
    return reply.code(ready ? 200 : 503).send({ status, checks, ...(replicas ? { replicas } : {}), ...(deps.build ? { build: deps.build } : {}) });
  });
}
