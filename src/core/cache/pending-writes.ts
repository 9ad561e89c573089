import { newVersion, TAG_PREFIX, TAG_TTL_MS } from './versions.js';

/** Retry delays of writes that could not be made: from the first to the longest. */
const REPLAY_FIRST_MS = 100;
const REPLAY_MAX_MS = 2000;

export interface PendingWritesDeps {
  /** Stores new tag versions (bounded by the store timeout). */
  writeVersions(entries: { key: string; value: string; ttl: number }[]): Promise<unknown>;
  /** Raises a mark in the store (bounded by the store timeout). */
  raiseMark(key: string, value: number, ttlMs: number): Promise<void>;
  /** A write failed again (counted and logged by the cache). */
  onError(err: unknown): void;
}

/**
 * Invalidations and read-your-writes marks the store could not take yet (Redis down or partitioned):
 * the write they belong to has committed, so they are kept and retried on every cache call, on
 * reconnect and on a timer (every 0.1 s at first, then at most every 2 s) until they land, and once
 * more on close. Until then this instance serves no entry carrying those tags and reads those marks
 * as unknown.
 */
export class PendingWrites {
  /** Tags whose new version is not written yet, with the write position (LSN) the version must carry. */
  readonly invalidations = new Map<string, number>();
  readonly marks = new Map<string, { value: number; ttlMs: number }>();
  private timer: NodeJS.Timeout | null = null;
  private delayMs = REPLAY_FIRST_MS;

  constructor(private readonly deps: PendingWritesDeps) {}

  get empty(): boolean {
    return this.invalidations.size === 0 && this.marks.size === 0;
  }

  addInvalidations(tags: readonly string[], position: number): void {
    for (const tag of tags) this.invalidations.set(tag, Math.max(position, this.invalidations.get(tag) ?? 0));
  }

  addMark(key: string, value: number, ttlMs: number): void {
    const pending = this.marks.get(key);
    this.marks.set(key, { value: Math.max(value, pending?.value ?? 0), ttlMs });
    this.schedule();
  }

  /** Writes what is pending; what still fails stays, and (with `retryLater`) a retry is scheduled. */
  async flush(retryLater = true): Promise<void> {
    for (const [key, { value, ttlMs }] of [...this.marks]) {
      try {
        await this.deps.raiseMark(key, value, ttlMs);
        if (this.marks.get(key)?.value === value) this.marks.delete(key);
      } catch (err) {
        this.deps.onError(err);
        if (retryLater) this.schedule();
        return;
      }
    }
    if (this.invalidations.size === 0) return;
    const pending = [...this.invalidations];
    try {
      await this.deps.writeVersions(pending.map(([t, position]) => ({ key: TAG_PREFIX + t, value: newVersion(position), ttl: TAG_TTL_MS })));
      for (const [t] of pending) this.invalidations.delete(t);
      this.delayMs = REPLAY_FIRST_MS;
    } catch (err) {
      this.deps.onError(err);
      if (retryLater) this.schedule();
    }
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** Retries on a timer, so the writes land even if this instance reads nothing more. */
  private schedule(): void {
    if (this.timer) return;
    const delay = this.delayMs;
    this.delayMs = Math.min(delay * 2, REPLAY_MAX_MS);
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.flush();
    }, delay);
    this.timer.unref();
  }
}
