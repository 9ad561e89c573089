import tseslint from 'typescript-eslint';

export default tseslint.config(
  // examples/client/src/gql/ is written by GraphQL Code Generator (npm run client:codegen).
  { ignores: ['dist/', 'node_modules/', '.data/', 'coverage/', 'bench/results/', 'examples/client/src/gql/'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      // type-graphql resolver lists are typed as Function by the library itself.
      '@typescript-eslint/no-unsafe-function-type': 'off',
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-console': 'off',
    },
  },
);
