import { buildSubgraphSchema } from '@apollo/subgraph';
import { graphqlSync, Kind, parse, type ConstDirectiveNode, type DocumentNode, type GraphQLSchema } from 'graphql';
import { createResolversMap } from 'type-graphql';
import { canSeeUser, requireViewer } from '../auth/auth.js';
import type { UserRow } from '../user/user.repository.js';
import type { PaymentRow } from '../payment/payment.repository.js';
import { idOrNull } from '../../core/pagination.js';
import type { Context } from '../../context.js';

/**
 * paygraph as an Apollo Federation 2 subgraph (GRAPHQL_FEDERATION=true): the schema type-graphql builds,
 * with `User` and `Payment` as entities keyed by `id`, made into a subgraph by `@apollo/subgraph` (its
 * `_service { sdl }` and `_entities`), the pattern of type-graphql's own federation example. Every field
 * keeps the resolver the app schema has (lean ones included); only the references are added here.
 */

/** The entity types and their keys. */
const ENTITIES = ['User', 'Payment'] as const;

/** The Federation 2 spec this subgraph speaks, and what it imports of it. */
const LINK = 'extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key"])';

const keyDirective: ConstDirectiveNode = (parse('type T @key(fields: "id") { id: ID }').definitions[0] as { directives: readonly ConstDirectiveNode[] }).directives[0]!;

/** The app's SDL with `@key(fields: "id")` on each entity and the federation link. */
export function subgraphTypeDefs(appSdl: string): DocumentNode {
  const app = parse(appSdl);
  const definitions = app.definitions.map((definition) =>
    definition.kind === Kind.OBJECT_TYPE_DEFINITION && (ENTITIES as readonly string[]).includes(definition.name.value)
      ? { ...definition, directives: [...(definition.directives ?? []), keyDirective] }
      : definition,
  );
  return { kind: Kind.DOCUMENT, definitions: [...parse(LINK).definitions, ...definitions] };
}

/**
 * A row as an entity: a copy, which `_entities` may mark with its `__typename` (the rows a request and
 * the cache share are frozen: one reader must not change what every other reads).
 */
const entity = <T extends object>(row: T): T => ({ ...row });

/**
 * The references, through the request's loaders (a batch of representations is one statement per
 * type), authorized exactly as `user(id)` and `payment(id)` are, except that what the viewer may not see
 * is null rather than an error: a reference to it is answered as if it did not exist. Without a viewer,
 * UNAUTHENTICATED, as any read.
 */
export const referenceResolvers = {
  User: {
    async __resolveReference(reference: { id?: unknown }, ctx: Context): Promise<UserRow | null> {
      const viewer = requireViewer(ctx.viewer);
      // An id that cannot be ours names nothing here.
      const id = idOrNull(reference.id);
      if (id === null || !canSeeUser(viewer, id)) return null;
      const row = await ctx.loaders.userById.load(id);
      return row && row.deletedAt === null ? entity(row) : null;
    },
  },
  Payment: {
    async __resolveReference(reference: { id?: unknown }, ctx: Context): Promise<PaymentRow | null> {
      const viewer = requireViewer(ctx.viewer);
      const id = idOrNull(reference.id);
      if (id === null) return null;
      const row = await ctx.loaders.paymentById.load(id);
      return row && canSeeUser(viewer, row.userId) ? entity(row) : null;
    },
  },
};

/** The subgraph schema over the app schema `schema` (built by type-graphql), printed as `appSdl`. */
export function buildSubgraph(schema: GraphQLSchema, appSdl: string): GraphQLSchema {
  const resolvers = createResolversMap(schema) as Record<string, Record<string, unknown>>;
  for (const [type, reference] of Object.entries(referenceResolvers)) resolvers[type] = { ...resolvers[type], ...reference };
  return buildSubgraphSchema({ typeDefs: subgraphTypeDefs(appSdl), resolvers: resolvers as never });
}

/** The subgraph SDL as `_service { sdl }` answers it (what a router composes), committed as schema.subgraph.graphql. */
export function printSubgraph(subgraph: GraphQLSchema): string {
  const result = graphqlSync({ schema: subgraph, source: '{ _service { sdl } }' });
  if (result.errors) throw result.errors[0];
  return `${(result.data as { _service: { sdl: string } })._service.sdl}\n`;
}
