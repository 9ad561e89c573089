import { LocalBuckets, RedisBuckets, type BucketSpec, type Buckets, type Taken } from './buckets.js';

export interface BudgetStoreOptions {
  /** Unset: buckets live in this process (one instance). */
  redisUrl: string | undefined;
  /** Instances that share budgets share it (`<namespace>:limit:`). */
  namespace: string;
  /** Bound on each round trip to Redis; past it this request is counted locally. */
  timeoutMs: number;
  /** After a failure, how long local buckets are used before Redis is tried again. */
  retryMs?: number;
  log: { warn(obj: object, msg: string): void; info(obj: object, msg: string): void };
}

/** Which buckets answer: this process's (`memory`, no Redis configured), Redis's, or local ones while Redis is away. */
export type BudgetMode = 'memory' | 'shared' | 'local';

class StoreTimeoutError extends Error {}

function bounded<T>(operation: Promise<T>, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new StoreTimeoutError(`rate-limit store did not answer within ${timeoutMs} ms`)), timeoutMs);
  });
  return Promise.race([operation, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Budgets in the shared store, and in this process while it is away: a take that fails or is not
 * answered in time is counted in a local bucket instead, so a Redis outage neither fails requests nor
 * lifts every limit (a client may then get up to one budget per instance). Redis is tried again after
 * `retryMs` (or when `/readyz` asks); once it answers, the local buckets are forgotten and the shared
 * ones count again.
 */
export class BudgetStore implements Buckets {
  private readonly local = new LocalBuckets();
  private readonly shared: RedisBuckets | null;
  private awayUntil = 0;
  private awaySince: number | null = null;
  /** Takes and gives counted locally because Redis was away (for metrics). */
  localFallbacks = 0;

  constructor(private readonly options: BudgetStoreOptions) {
    this.shared = options.redisUrl
      ? new RedisBuckets(options.redisUrl, `${options.namespace}:limit:`, (err) => this.noteAway(err))
      : null;
  }

  get mode(): BudgetMode {
    if (!this.shared) return 'memory';
    return this.awaySince === null ? 'shared' : 'local';
  }

  /** Waits (bounded) for the first connection to Redis, so the first requests find it. */
  async ready(timeoutMs = 2000): Promise<void> {
    if (!this.shared) return;
    await Promise.race([this.shared.connected, new Promise((resolve) => setTimeout(resolve, timeoutMs).unref())]);
  }

  take(key: string, cost: number, spec: BucketSpec): Promise<Taken> {
    return this.use((buckets) => buckets.take(key, cost, spec));
  }

  give(key: string, points: number, spec: BucketSpec): Promise<void> {
    return this.use((buckets) => buckets.give(key, points, spec));
  }

  /**
   * For readiness: null without Redis, 'ok' when budgets are shared, else why they are local. While
   * local, it tries Redis (bounded) so an idle instance returns to the shared budgets too.
   */
  async status(): Promise<'ok' | string | null> {
    if (!this.shared) return null;
    if (this.awaySince !== null && Date.now() >= this.awayUntil) {
      try {
        await bounded(this.shared.ping(), this.options.timeoutMs);
        this.noteBack();
      } catch (err) {
        this.noteAway(err);
      }
    }
    return this.awaySince === null ? 'ok' : `local buckets since ${new Date(this.awaySince).toISOString()}: the shared store is not answering`;
  }

  async close(): Promise<void> {
    await this.shared?.close();
  }

  private async use<T>(operation: (buckets: Buckets) => Promise<T>): Promise<T> {
    if (!this.shared || Date.now() < this.awayUntil) {
      if (this.shared) this.localFallbacks++;
      return operation(this.local);
    }
    try {
      const result = await bounded(operation(this.shared), this.options.timeoutMs);
      if (this.awaySince !== null) this.noteBack();
      return result;
    } catch (err) {
      this.noteAway(err);
      this.localFallbacks++;
      return operation(this.local);
    }
  }

  private noteAway(err: unknown): void {
    this.awayUntil = Date.now() + (this.options.retryMs ?? 1000);
    if (this.awaySince !== null) return;
    this.awaySince = Date.now();
    this.options.log.warn({ err }, 'rate limits: the shared store (Redis) is not answering; counting budgets in this instance until it is');
  }

  private noteBack(): void {
    const since = this.awaySince;
    this.awaySince = null;
    this.awayUntil = 0;
    this.local.clear();
    this.options.log.info({ localSinceMs: since === null ? 0 : Date.now() - since }, 'rate limits: the shared store answers again; budgets are shared again');
  }
}
