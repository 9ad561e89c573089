/**
 * `npm run db:seed -- --users N --payments M [--large-user P] [--statement-timeout-ms T]`: adds N users
 * with M payments each, and with --large-user one more user with P payments (deterministic). A seed's
 * statements are long (250,000 payments each), so by default they run with no statement timeout
 * (T = 0), whatever DB_STATEMENT_TIMEOUT_MS says for the server.
 */
import { withDatabase, intFlag } from './cli.js';
import { seedDemoData } from '../db/seeders/demo.seeder.js';

const users = intFlag('users', 50);
const paymentsPerUser = intFlag('payments', 20);
const largeUserPayments = intFlag('large-user', 0);
const statementTimeoutMs = intFlag('statement-timeout-ms', 0);

await withDatabase({ entry: 'seed', statementTimeoutMs: () => statementTimeoutMs }, async (orm) => {
  const started = Date.now();
  const result = await seedDemoData(orm.em.fork(), { users, paymentsPerUser, largeUserPayments, progress: (line) => console.error(line) });
  // Fresh statistics for the planner: a large seed otherwise waits for autovacuum to find it.
  await orm.em.fork().getConnection().execute('analyze users, payments');
  console.log(
    `seeded ${result.users} users and ${result.payments} payments in ${Date.now() - started} ms` +
      (result.adminEmail ? ` (admin: ${result.adminEmail})` : ''),
  );
});
