import { createHash } from 'node:crypto';
import type { ApolloServerPlugin } from '@apollo/server';
import { Counter, type Registry } from 'prom-client';
import type { CacheService, ReadDependencies } from '../../core/cache/index.js';
import { Lru } from '../../core/lru.js';
import type { RequestScope } from '../../core/request-scope.js';
import type { Viewer } from '../auth/auth.js';

/** What `x-response-cache` says of a response. */
export type ResponseCacheResult = 'hit' | 'miss' | 'bypass';

export interface ResponseCacheOptions {
  ttlSeconds: number;
  /** In-process store only (no Redis): bytes of response bodies kept at most, oldest used dropped first. */
  maxMemoryBytes: number;
  /** DEBUG_SQL: bodies carry per-request `extensions` (statements, cache stats) that a hit must not replay. */
  debugExtensions: boolean;
  /** Cost budgets are on: bodies carry the request's `extensions.cost`, which a hit replaces with its own. */
  costExtension?: boolean;
  registry?: Registry;
}

/** One cached response: the body as sent, its content type, and the tag versions it was read at. */
interface StoredResponse {
  b: string;
  c: string;
  t: Record<string, string>;
  /** The operation's name (for the log line and metrics of a hit). */
  o: string | null;
}

/** The parts of a POST body that make a response what it is. */
interface GraphQLBody {
  query?: unknown;
  operationName?: unknown;
  variables?: unknown;
  extensions?: unknown;
}

/** What the handler learns of one request before execution: its key, or why it is not looked up. */
export type ResponseCachePlan = { key: string } | { bypass: string };

/** What the operation turned out to be, told by the plugin after execution. */
interface Verdict {
  cacheable: boolean;
  dependencies: ReadDependencies;
  operationName: string | null;
}

const MUTATION_OR_SUBSCRIPTION = /^\s*(mutation|subscription)\b/;
/** Introspection anywhere in a document (a false positive only costs a bypass). */
const INTROSPECTION = /\b__(schema|type)\b/;

/** In-process bodies, bounded by their total size (the least recently used go first), each with its TTL. */
class MemoryResponses {
  private readonly entries: Lru<string, { value: StoredResponse; expires: number }>;

  constructor(maxBytes: number) {
    // UTF-16 length of the body plus a rough allowance for the key and the tag versions.
    const weigh = ({ value }: { value: StoredResponse }, key: string) => value.b.length * 2 + key.length * 2 + 64 * Object.keys(value.t).length + 128;
    this.entries = new Lru<string, { value: StoredResponse; expires: number }>(Number.POSITIVE_INFINITY, { weigh, max: maxBytes });
  }

  get(key: string): StoredResponse | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.expires <= Date.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return entry.value;
  }

  set(key: string, value: StoredResponse, ttlMs: number): void {
    this.entries.set(key, { value, expires: Date.now() + ttlMs });
  }

  get size(): { entries: number; bytes: number } {
    return { entries: this.entries.size, bytes: this.entries.totalWeight };
  }
}

/**
 * Whole responses of query operations, in the shared store (memory, or Redis when configured), keyed
 * by document, variables, operation name, the viewer's id and role and the `Accept` header. Each entry
 * carries the version of every tag the request's reads depended on (`ReadDependencies`, read before
 * each load); a hit needs all of them current, so a write that bumps any of them makes it a miss on
 * every instance at once, as for the query cache. A response is kept only when every statement it sent
 * was a tagged read, it has no errors, it is a query and no introspection, and the client did not ask
 * for fresh data. A hit is answered before parsing and execution. Store errors fail open (a miss).
 */
export class ResponseCache {
  readonly totals = { hits: 0, misses: 0, bypasses: 0, sets: 0, errors: 0 };
  private readonly verdicts = new WeakMap<object, Verdict>();
  private readonly memory: MemoryResponses | null;
  private readonly shared: ReturnType<CacheService['keyValueStore']> | null;

  constructor(
    private readonly cache: CacheService,
    private readonly options: ResponseCacheOptions,
  ) {
    this.memory = cache.isShared ? null : new MemoryResponses(options.maxMemoryBytes);
    // Per build, like the query cache's entries: another version of the server renders other bodies.
    this.shared = cache.isShared ? cache.keyValueStore(`r:${cache.build}:`) : null;
    if (options.registry) {
      const totals = this.totals;
      new Counter({
        name: 'response_cache_requests_total',
        help: 'GraphQL requests by what the response cache did: hit, miss (looked up, not found) or bypass',
        labelNames: ['result'] as const,
        registers: [options.registry],
        collect() {
          this.reset();
          this.inc({ result: 'hit' }, totals.hits);
          this.inc({ result: 'miss' }, totals.misses);
          this.inc({ result: 'bypass' }, totals.bypasses);
        },
      });
    }
  }

  /** Bodies held in process memory (none with Redis). */
  get memorySize(): { entries: number; bytes: number } {
    return this.memory?.size ?? { entries: 0, bytes: 0 };
  }

  /**
   * The key of a POST request (JSON bodies only, which CSRF prevention lets through), or why it is not
   * looked up: a batch, an operation that cannot be a query, a client that asked for fresh data.
   */
  plan(body: unknown, headers: Record<string, string | string[] | undefined>, viewer: Viewer | null): ResponseCachePlan {
    if (body === null || typeof body !== 'object' || Array.isArray(body)) return { bypass: 'batch or no body' };
    // Every data field needs a viewer: nothing an anonymous client asks for is worth keeping, and
    // whatever it could make the server keep (a made-up variable, an extension) would be its to fill.
    if (!viewer) return { bypass: 'anonymous' };
    const cacheControl = headers['cache-control'];
    if (cacheControl !== undefined && /\bno-(cache|store)\b/i.test(String(cacheControl))) return { bypass: 'no-cache' };
    const { query, operationName, variables, extensions } = body as GraphQLBody;
    if (typeof query === 'string' && (MUTATION_OR_SUBSCRIPTION.test(query) || INTROSPECTION.test(query))) return { bypass: 'not a query' };
    const accept = headers.accept;
    // Only what can change the response is part of the key: the APQ hash (the one extension the server
    // reads), and the variables the document names (GraphQL ignores the others).
    const key = createHash('sha256')
      .update(JSON.stringify([query ?? null, operationName ?? null, keyedVariables(query, variables), persistedQueryHash(extensions), viewer.id, viewer.role, accept ?? null]))
      .digest('base64url');
    return { key };
  }

  /** The stored body of `key` if every tag it depended on is still at the version it was read at. */
  async lookup(key: string): Promise<{ body: string; contentType: string; operationName: string | null } | null> {
    try {
      const stored = this.memory ? this.memory.get(key) : await this.readShared(key);
      if (!stored) return null;
      const tags = Object.keys(stored.t);
      const versions = await this.cache.tagVersions(tags);
      if (!tags.every((tag, i) => versions[i] === stored.t[tag])) return null;
      return { body: this.options.debugExtensions ? withHitExtensions(stored.b) : stored.b, contentType: stored.c, operationName: stored.o };
    } catch (err) {
      this.totals.errors++;
      this.cache.noteError(err);
      return null;
    }
  }

  /** Keeps `body` under `key` when the operation's verdict allows it; answers what the header says. */
  async store(key: string, context: RequestScope, body: string, status: number, contentType: string | undefined): Promise<ResponseCacheResult> {
    const verdict = this.verdicts.get(context.cache);
    if (!verdict?.cacheable || status !== 200 || !contentType || !verdict.dependencies.complete) return 'bypass';
    const value: StoredResponse = {
      b: this.options.debugExtensions || this.options.costExtension ? withoutRequestExtensions(body) : body,
      c: contentType,
      t: Object.fromEntries(verdict.dependencies.versions),
      o: verdict.operationName,
    };
    const ttlMs = this.options.ttlSeconds * 1000;
    if (this.memory) this.memory.set(key, value, ttlMs);
    else await this.shared!.set(key, JSON.stringify(value), { ttl: this.options.ttlSeconds });
    this.totals.sets++;
    return 'miss';
  }

  /** A stored body with one more top-level extension (a hit's own cost). */
  withExtension(body: string, name: string, value: unknown): string {
    // Without DEBUG_SQL a stored body has no extensions left (see `store`): the object is closed by its last brace.
    if (!this.options.debugExtensions && body.endsWith('}') && !body.includes('"extensions"')) return `${body.slice(0, -1)},"extensions":{${JSON.stringify(name)}:${JSON.stringify(value)}}}`;
    const parsed = JSON.parse(body) as { extensions?: Record<string, unknown> };
    parsed.extensions = { ...parsed.extensions, [name]: value };
    return JSON.stringify(parsed);
  }

  /** Counts what the handler did (for metrics). */
  count(result: ResponseCacheResult): void {
    if (result === 'hit') this.totals.hits++;
    else if (result === 'miss') this.totals.misses++;
    else this.totals.bypasses++;
  }

  /**
   * Decides, once an operation has run, whether its response may be kept: a query without errors, no
   * introspection, the query cache on throughout, and every statement a tagged read.
   */
  plugin(): ApolloServerPlugin<RequestScope> {
    const verdicts = this.verdicts;
    return {
      async requestDidStart() {
        return {
          async willSendResponse({ contextValue, operation, operationName, response, source }) {
            if (!contextValue?.cache) return;
            const cacheable =
              operation?.operation === 'query' &&
              response.body.kind === 'single' &&
              !response.body.singleResult.errors &&
              (response.http.status === undefined || response.http.status === 200) &&
              !INTROSPECTION.test(source ?? '') &&
              contextValue.cache.enabled &&
              contextValue.sql.untagged === 0;
            // Apollo hands plugins a shallow copy of the context: the verdict goes by the request's cache scope.
            verdicts.set(contextValue.cache, { cacheable, dependencies: contextValue.cache.dependencies, operationName: operationName ?? null });
          },
        };
      },
    };
  }

  private async readShared(key: string): Promise<StoredResponse | undefined> {
    const text = await this.shared!.get(key);
    return text === undefined ? undefined : (JSON.parse(text) as StoredResponse);
  }
}

/** `extensions.persistedQuery.sha256Hash`, the only extension that changes what runs; null without one. */
function persistedQueryHash(extensions: unknown): string | null {
  const hash = (extensions as { persistedQuery?: { sha256Hash?: unknown } } | null | undefined)?.persistedQuery?.sha256Hash;
  return typeof hash === 'string' ? hash : null;
}

/**
 * The variables a response can depend on, in a fixed order: those the document names (`$name`). A
 * document sent by hash alone is not known here, so all of its variables count.
 */
function keyedVariables(query: unknown, variables: unknown): [string, unknown][] | null {
  if (variables === null || typeof variables !== 'object' || Array.isArray(variables)) return null;
  const named = typeof query === 'string' ? new Set([...query.matchAll(/\$([_A-Za-z][_0-9A-Za-z]*)/g)].map((m) => m[1]!)) : null;
  return Object.entries(variables as Record<string, unknown>)
    .filter(([name]) => !named || named.has(name))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/** A body without what belonged to the request that made it (statement counts, cache stats, its cost). */
function withoutRequestExtensions(body: string): string {
  const parsed = JSON.parse(body) as { extensions?: Record<string, unknown> };
  if (parsed.extensions) {
    delete parsed.extensions.sql;
    delete parsed.extensions.cache;
    delete parsed.extensions.cost;
    if (Object.keys(parsed.extensions).length === 0) delete parsed.extensions;
  }
  return JSON.stringify(parsed);
}

/** A debug body as a hit answers it: no statement, nothing of the query cache. */
function withHitExtensions(body: string): string {
  const parsed = JSON.parse(body) as { extensions?: Record<string, unknown> };
  parsed.extensions = { ...parsed.extensions, sql: { statements: 0, durationMs: 0, queries: [] }, responseCache: 'hit' };
  return JSON.stringify(parsed);
}
