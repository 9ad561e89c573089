/**
 * A small typed client of paygraph: every document is typed from schema.graphql by GraphQL Code
 * Generator (src/gql/), and is sent by its hash (`documentId`), so it runs on a server that trusts only
 * the manifest codegen wrote (GRAPHQL_TRUSTED_DOCUMENTS=examples/client/src/gql/persisted-documents.json).
 * Plain fetch for queries, graphql-ws for subscriptions; no client framework needed.
 */
import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { print } from 'graphql';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { MyPayments, MyPaymentUpdates } from './operations.js';
import type { MyPaymentsQuery, MyPaymentUpdatesSubscription } from './gql/graphql.js';

export interface PaygraphClientOptions {
  /** `http://host:4000/graphql`; subscriptions go to the same path over ws(s)://. */
  url: string;
  /** A bearer token (`npm run token -- <email>` prints one). */
  token: string;
}

/** A GraphQL error answer, with the server's codes. */
export class PaygraphError extends Error {
  constructor(readonly errors: { message: string; extensions?: { code?: string } }[]) {
    super(errors.map((e) => `${e.extensions?.code ?? 'ERROR'}: ${e.message}`).join('; '));
  }
}

/** The hash codegen gave a document: what the server's manifest knows it by. */
function documentIdOf(document: TypedDocumentNode<unknown, unknown>): string {
  const hash = (document as { __meta__?: { hash?: string } }).__meta__?.hash;
  if (!hash) throw new Error('document has no persisted hash: regenerate with npm run client:codegen');
  return hash;
}

export type PaymentNode = NonNullable<MyPaymentsQuery['me']>['payments']['nodes'][number];
export type PaymentUpdate = MyPaymentUpdatesSubscription['paymentUpdated'];

export function createPaygraphClient(options: PaygraphClientOptions) {
  async function request<TData, TVariables>(document: TypedDocumentNode<TData, TVariables>, variables: TVariables): Promise<TData> {
    const res = await fetch(options.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/graphql-response+json, application/json;q=0.9',
        authorization: `Bearer ${options.token}`,
      },
      body: JSON.stringify({ documentId: documentIdOf(document as TypedDocumentNode<unknown, unknown>), variables }),
    });
    const body = (await res.json()) as { data?: TData; errors?: PaygraphError['errors'] };
    if (body.errors?.length || !body.data) throw new PaygraphError(body.errors ?? [{ message: `HTTP ${res.status}` }]);
    return body.data;
  }

  let ws: Client | null = null;

  return {
    /** One page of the viewer's payments, newest first. */
    async paymentsPage(first: number, after: string | null = null) {
      const data = await request(MyPayments, { first, after });
      if (!data.me) throw new PaygraphError([{ message: 'no viewer', extensions: { code: 'UNAUTHENTICATED' } }]);
      return data.me.payments;
    },

    /** Every payment of the viewer, page by page with the cursors (`pageSize` each). */
    async allPayments(pageSize = 20): Promise<PaymentNode[]> {
      const all: PaymentNode[] = [];
      let after: string | null = null;
      for (;;) {
        const page = await this.paymentsPage(pageSize, after);
        all.push(...page.nodes);
        if (!page.pageInfo.hasNextPage) return all;
        after = page.pageInfo.endCursor ?? null;
      }
    },

    /** Calls `onChange` with each change of the viewer's payments until the returned function is called. */
    watchPayments(onChange: (payment: PaymentUpdate) => void, onError: (error: unknown) => void = () => {}): () => void {
      ws ??= createClient({
        url: options.url.replace(/^http/, 'ws'),
        webSocketImpl: WebSocket,
        connectionParams: { authorization: `Bearer ${options.token}` },
      });
      // The text, for any server, and its hash, by which a trusting server finds it in its manifest.
      return ws.subscribe<MyPaymentUpdatesSubscription>(
        { query: print(MyPaymentUpdates), extensions: { persistedQuery: { version: 1, sha256Hash: documentIdOf(MyPaymentUpdates as TypedDocumentNode<unknown, unknown>) } } },
        { next: (result) => result.data && onChange(result.data.paymentUpdated), error: onError, complete: () => {} },
      );
    },

    async close(): Promise<void> {
      await ws?.dispose();
      ws = null;
    },
  };
}

export type PaygraphClient = ReturnType<typeof createPaygraphClient>;
