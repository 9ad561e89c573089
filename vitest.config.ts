import { defineConfig } from 'vitest/config';

// Source inlined by Vite would otherwise get graphql's ESM build while type-graphql and Apollo,
// loaded by Node, get the CommonJS one: two graphql realms that reject each other's schema.
const resolve = { alias: [{ find: /^graphql$/, replacement: 'graphql/index.js' }] };
const shared = {
  globalSetup: ['tests/helpers/global-setup.ts'],
  pool: 'forks' as const,
  testTimeout: 60_000,
  hookTimeout: 180_000,
};

/** The suites that prove rules, run a second time with production's caches on (see tests/helpers/test-app.ts). */
const RULES = ['authorization', 'pagination', 'user-mutations', 'audit-log', 'payments', 'subscriptions', 'limits'].map((name) => `tests/integration/${name}.test.ts`);

export default defineConfig({
  resolve,
  test: {
    reporters: ['default', './tests/helpers/summary-reporter.ts'],
    projects: [
      { resolve, test: { ...shared, name: 'caches off', include: ['tests/**/*.test.ts'], env: { NODE_ENV: 'test' } } },
      { resolve, test: { ...shared, name: 'production caches', include: RULES, env: { NODE_ENV: 'test', PAYGRAPH_TEST_CACHES: 'production' } } },
    ],
  },
});
