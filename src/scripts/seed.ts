/** `npm run db:seed -- --users N --payments M`: adds N users with M payments each (deterministic). */
import { withDatabase, intFlag } from './cli.js';
import { seedDemoData } from '../db/seeders/demo.seeder.js';

const users = intFlag('users', 50);
const paymentsPerUser = intFlag('payments', 20);

await withDatabase(async (orm) => {
  const started = Date.now();
  const result = await seedDemoData(orm.em.fork(), { users, paymentsPerUser });
  console.log(
    `seeded ${result.users} users and ${result.payments} payments in ${Date.now() - started} ms` +
      (result.adminEmail ? ` (admin: ${result.adminEmail})` : ''),
  );
});
