import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: {
    // Source inlined by Vite would otherwise get graphql's ESM build while type-graphql and Apollo,
    // loaded by Node, get the CommonJS one: two graphql realms that reject each other's schema.
    alias: [{ find: /^graphql$/, replacement: 'graphql/index.js' }],
  },
  test: {
    include: ['tests/**/*.test.ts'],
    globalSetup: ['tests/helpers/global-setup.ts'],
    pool: 'forks',
    reporters: ['default', './tests/helpers/summary-reporter.ts'],
    testTimeout: 60_000,
    hookTimeout: 180_000,
    env: { NODE_ENV: 'test' },
  },
});
