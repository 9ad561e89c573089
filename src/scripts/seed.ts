/**
 * `npm run db:seed -- --users N --payments M [--statement-timeout-ms T]`: adds N users with M payments
 * each (deterministic). A large seed is one long statement, so by default it runs with no statement
 * timeout (T = 0), whatever DB_STATEMENT_TIMEOUT_MS says for the server.
 */
import { withDatabase, intFlag } from './cli.js';
import { seedDemoData } from '../db/seeders/demo.seeder.js';

const users = intFlag('users', 50);
const paymentsPerUser = intFlag('payments', 20);
const statementTimeoutMs = intFlag('statement-timeout-ms', 0);

await withDatabase({ entry: 'seed', statementTimeoutMs: () => statementTimeoutMs }, async (orm) => {
  const started = Date.now();
  const result = await seedDemoData(orm.em.fork(), { users, paymentsPerUser });
  console.log(
    `seeded ${result.users} users and ${result.payments} payments in ${Date.now() - started} ms` +
      (result.adminEmail ? ` (admin: ${result.adminEmail})` : ''),
  );
});
