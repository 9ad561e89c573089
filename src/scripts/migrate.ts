/** `npm run db:migrate`: applies pending migrations (start-up does the same, under the same lock). */
import { withDatabase } from './cli.js';

await withDatabase({ entry: 'migrate' }, async (orm) => {
  const executed = await orm.getMigrator().getExecutedMigrations();
  console.log(`migrations applied: ${executed.map((m) => m.name).join(', ') || 'none'}`);
});
