/**
 * Config for the MikroORM CLI (`npx mikro-orm ...`, e.g. `migration:create`), reading DATABASE_URL.
 * The app itself builds the same options through `ormOptions` in src/db/orm.ts.
 */
import { loadConfig } from './src/config.js';
import { ormOptions } from './src/db/orm.js';

const config = loadConfig(process.env, 'migrate');
if (!config.databaseUrl) throw new Error('Set DATABASE_URL to use the MikroORM CLI');

const options = ormOptions({ databaseUrl: config.databaseUrl });

export default {
  ...options,
  // New migration files go here; list each in src/db/migrations/index.ts.
  migrations: { ...options.migrations, path: 'src/db/migrations', pathTs: 'src/db/migrations' },
};
