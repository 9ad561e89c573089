import type { MigrationObject } from '@mikro-orm/core';
import { Migration20261129000000_initial } from './Migration20261129000000_initial.js';
import { Migration20261129010000_stripe } from './Migration20261129010000_stripe.js';
import { Migration20261129020000_trust } from './Migration20261129020000_trust.js';
import { Migration20261201000000_leases } from './Migration20261201000000_leases.js';
import { Migration20261201010000_refund_attempt } from './Migration20261201010000_refund_attempt.js';
import { Migration20261201020000_client_request_id } from './Migration20261201020000_client_request_id.js';
import { Migration20261201030000_payment_lifecycle } from './Migration20261201030000_payment_lifecycle.js';
import { Migration20261201040000_list_indexes } from './Migration20261201040000_list_indexes.js';
import { Migration20261201050000_counters } from './Migration20261201050000_counters.js';
import { Migration20261207000000_identities } from './Migration20261207000000_identities.js';

// Listed explicitly rather than discovered by glob, so the same list works under tsx, vitest and
// the compiled build. Append new migrations here: a class extending PaygraphMigration (src/db/migration.ts).
export const migrationsList: MigrationObject[] = [
  { name: 'Migration20261129000000_initial', class: Migration20261129000000_initial },
  { name: 'Migration20261129010000_stripe', class: Migration20261129010000_stripe },
  { name: 'Migration20261129020000_trust', class: Migration20261129020000_trust },
  { name: 'Migration20261201000000_leases', class: Migration20261201000000_leases },
  { name: 'Migration20261201010000_refund_attempt', class: Migration20261201010000_refund_attempt },
  { name: 'Migration20261201020000_client_request_id', class: Migration20261201020000_client_request_id },
  { name: 'Migration20261201030000_payment_lifecycle', class: Migration20261201030000_payment_lifecycle },
  { name: 'Migration20261201040000_list_indexes', class: Migration20261201040000_list_indexes },
  { name: 'Migration20261201050000_counters', class: Migration20261201050000_counters },
  { name: 'Migration20261207000000_identities', class: Migration20261207000000_identities },
];
