import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';

export interface Subscriber {
  client: Client;
  /** Results received so far. */
  results: { data?: any; errors?: any[] }[];
  /** Errors the operation ended with (graphql-ws `error` message, or a close). */
  errors: unknown[];
  completed: boolean;
  /** Resolves when `count` results have arrived, or rejects after `timeoutMs`. */
  waitFor(count: number, timeoutMs?: number): Promise<void>;
  /** Resolves once the server acknowledged the subscription (or failed it). */
  dispose(): Promise<void>;
}

/** A graphql-ws client over `ws`, as Apollo Client or Sandbox would connect, with a bearer token. */
export function wsClient(url: string, token: string | null, options: { onClose?: (code: number, reason: string) => void } = {}): Client {
  return createClient({
    url,
    webSocketImpl: WebSocket,
    connectionParams: token === null ? {} : { authorization: `Bearer ${token}` },
    lazy: false,
    retryAttempts: 0,
    on: { closed: (event) => options.onClose?.((event as { code: number }).code, (event as { reason: string }).reason) },
    onNonLazyError: () => {},
  });
}

/** Subscribes and collects what arrives. */
export function subscribeWith(client: Client, query: string, variables: Record<string, unknown> = {}): Subscriber {
  const results: Subscriber['results'] = [];
  const errors: unknown[] = [];
  /** Each returns true once it is settled (and is then dropped). */
  let waiters: (() => boolean)[] = [];
  const notify = () => (waiters = waiters.filter((w) => !w()));
  const sub: Subscriber = {
    client,
    results,
    errors,
    completed: false,
    waitFor(count, timeoutMs = 3000) {
      return new Promise((resolve, reject) => {
        const timer: { id?: NodeJS.Timeout } = {};
        const check = () => {
          if (results.length >= count) resolve();
          else if (errors.length > 0 || sub.completed) reject(new Error(`ended after ${results.length} results: ${JSON.stringify(errors)}`));
          else return false;
          clearTimeout(timer.id);
          return true;
        };
        if (check()) return;
        timer.id = setTimeout(() => {
          waiters = waiters.filter((w) => w !== check);
          reject(new Error(`only ${results.length} of ${count} results within ${timeoutMs} ms`));
        }, timeoutMs);
        waiters.push(check);
      });
    },
    async dispose() {
      unsubscribe();
    },
  };
  const unsubscribe = client.subscribe(
    { query, variables },
    {
      next: (value) => {
        results.push(value as never);
        notify();
      },
      error: (err) => {
        errors.push(err);
        notify();
      },
      complete: () => {
        sub.completed = true;
        notify();
      },
    },
  );
  return sub;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
