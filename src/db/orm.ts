import { MikroORM, type Options } from '@mikro-orm/postgresql';
import { Migrator } from '@mikro-orm/migrations';
import { User } from '../modules/user/user.entity.js';
import { Payment } from '../modules/payment/payment.entity.js';
import { StripeEvent } from '../modules/payment/stripe-event.entity.js';
import { AuditLogEntry } from '../modules/audit/audit.entity.js';
import { StatementTotals, StatsLogger } from '../core/sql-stats.js';
import { migrationsList } from './migrations/index.js';

export interface OrmSettings {
  databaseUrl: string;
  poolMax?: number;
  /** Print every statement (MikroORM's query logger). */
  logQueries?: boolean;
  /** No "Applied migration" lines (tests, silent log level). */
  quiet?: boolean;
  /** Server-side statement_timeout of every connection. */
  statementTimeoutMs?: number;
  /** Bound on opening a connection and on waiting for a free one. */
  connectTimeoutMs?: number;
  /** Streaming replicas of `databaseUrl` (named replica1, replica2...); reads reach them only through src/db/replicas. */
  replicaUrls?: readonly string[];
}

/** Options shared by the app, the CLI config and the tests. */
export function ormOptions(settings: OrmSettings, totals = new StatementTotals()): Options {
  return {
    clientUrl: settings.databaseUrl,
    entities: [User, Payment, StripeEvent, AuditLogEntry],
    // Every decorator states its type, so discovery needs no emitted metadata (tsx emits none).
    discovery: { requireEntitiesArray: true },
    extensions: [Migrator],
    migrations: {
      migrationsList,
      transactional: true,
      allOrNothing: true,
      snapshot: false,
      silent: settings.quiet ?? false,
    },
    pool: { min: 0, max: settings.poolMax ?? 10 },
    replicas: (settings.replicaUrls ?? []).map((clientUrl, i) => ({ name: `replica${i + 1}`, clientUrl })),
    // Entity finds stay on the primary: a replica is chosen per read by src/db/replicas (healthy,
    // and past the writes that read must see), never at random by the ORM.
    preferReadReplicas: false,
    // Fail fast when PostgreSQL is away: bounded connect, pool wait and statement time.
    driverOptions: {
      acquireConnectionTimeout: settings.connectTimeoutMs ?? 2000,
      connection: {
        connectionTimeoutMillis: settings.connectTimeoutMs ?? 2000,
        statement_timeout: settings.statementTimeoutMs ?? 10_000,
        keepAlive: true,
      },
    },
    debug: settings.logQueries ? ['query', 'query-params'] : false,
    loggerFactory: (options) => new StatsLogger(options, totals),
    // Request code forks explicitly; touching the global EntityManager is a bug we want to see.
    allowGlobalContext: false,
    forceUtcTimezone: true,
  };
}

export interface Database {
  orm: MikroORM;
  /** Statements seen by the ORM logger, attributed to a request or not. */
  totals: StatementTotals;
}

/** Connects and applies pending migrations. */
export async function initORM(settings: OrmSettings, overrides: Partial<Options> = {}): Promise<Database> {
  const totals = new StatementTotals();
  const orm = await MikroORM.init({ ...ormOptions(settings, totals), ...overrides });
  await orm.getMigrator().up();
  return { orm, totals };
}
