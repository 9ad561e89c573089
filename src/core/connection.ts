import { Field, Int, ObjectType, type ClassType } from 'type-graphql';

@ObjectType('PageInfo', { simpleResolvers: true })
export class PageInfo {
  @Field(() => Boolean)
  hasNextPage!: boolean;

  // Computed on read (see Connection.pageInfo), so not "simple": a resolver's error is a field error.
  @Field(() => String, { nullable: true, description: 'Pass as `after` to get the next page.', simple: false })
  endCursor!: string | null;
}

/**
 * The value a connection field resolves to. `rows` may hold one row more than `first`: that row only
 * says a next page exists and is not returned. Edges and pageInfo are derived on demand, and
 * `totalCount` runs its count only when a client selects it.
 */
export class Connection<T> {
  readonly nodes: T[];
  readonly hasNextPage: boolean;

  constructor(
    rows: T[],
    first: number,
    private readonly cursorOf: (node: T) => string,
    private readonly count: () => Promise<number>,
  ) {
    this.hasNextPage = rows.length > first;
    this.nodes = this.hasNextPage ? rows.slice(0, first) : rows;
  }

  get edges(): { cursor: string; node: T }[] {
    return this.nodes.map((node) => ({ cursor: this.cursorOf(node), node }));
  }

  get pageInfo(): PageInfo {
    const { nodes, hasNextPage, cursorOf } = this;
    return {
      hasNextPage,
      // Only when asked for: a page fetched for `hasNextPage` alone carries no cursor columns.
      get endCursor() {
        const last = nodes[nodes.length - 1];
        return last === undefined ? null : cursorOf(last);
      },
    };
  }

  get totalCount(): Promise<number> {
    return this.count();
  }
}

/** GraphQL `<Name>Connection` and `<Name>Edge` object types for a node type. */
export function connectionTypes<TNode extends object>(name: string, nodeType: ClassType<TNode>) {
  @ObjectType(`${name}Edge`, { simpleResolvers: true })
  class Edge {
    @Field(() => String)
    cursor!: string;

    @Field(() => nodeType)
    node!: TNode;
  }

  @ObjectType(`${name}Connection`, { simpleResolvers: true })
  class ConnectionType {
    @Field(() => [nodeType])
    nodes!: TNode[];

    // Not "simple" (nor pageInfo): they are getters that compute cursors, and a compiled executor
    // turns what a resolver throws into a field error, but not what a plain property read throws.
    @Field(() => [Edge], { simple: false })
    edges!: Edge[];

    @Field(() => PageInfo, { simple: false })
    pageInfo!: PageInfo;

    // Not "simple": its value is a promise, which a compiled executor only awaits from a resolver.
    @Field(() => Int, { description: 'Counted only when selected: one extra statement.', simple: false })
    totalCount!: number;
  }

  return { Edge, ConnectionType };
}
