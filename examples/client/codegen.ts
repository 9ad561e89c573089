import type { CodegenConfig } from '@graphql-codegen/cli';

/**
 * Typed documents for the example client, from the committed schema.graphql, with GraphQL Code
 * Generator's client preset. `persistedDocuments` also writes `persisted-documents.json`: the manifest
 * a server can trust (GRAPHQL_TRUSTED_DOCUMENTS) and the hash each document is sent by.
 * `npm run client:codegen` writes them; a test fails when they drift from the schema or the operations.
 */
const config: CodegenConfig = {
  schema: 'schema.graphql',
  documents: ['examples/client/src/operations.ts'],
  ignoreNoDocuments: false,
  // ES module imports with their .js extension, as NodeNext resolution wants.
  emitLegacyCommonJSImports: false,
  generates: {
    'examples/client/src/gql/': {
      preset: 'client',
      // The manifest's keys are the sha256 of each document, as the server checks them.
      presetConfig: { persistedDocuments: { hashAlgorithm: 'sha256' }, fragmentMasking: false },
      config: { useTypeImports: true, enumsAsTypes: true, scalars: { DateTime: 'string', JSONObject: 'Record<string, unknown>' } },
    },
  },
};

export default config;
