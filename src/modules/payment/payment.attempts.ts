import type { Buckets, BucketSpec } from '../limits/buckets.js';
import type { FailureRule } from './payment.repository.js';

export interface PaymentAttemptSettings {
  /** New payments a user may create per minute; 0: no limit. */
  perMinute: number;
  /** FAILED payments created within `failureWindowSeconds` after which new ones are refused; 0: no limit. */
  maxFailures: number;
  failureWindowSeconds: number;
}

/**
 * Card-testing protection for createPayment (stolen card numbers tried in bulk through one account),
 * as Stripe advises: a budget of new payments per user per minute (a leaky bucket in the shared
 * store, so every instance counts the same attempts), and a rule on the user's recent failures, which
 * the repository checks atomically with the new row. A retry of an existing payment is never refused.
 */
export class PaymentAttempts {
  private readonly spec: BucketSpec | null;
  readonly failures: FailureRule | undefined;

  constructor(
    settings: PaymentAttemptSettings,
    private readonly buckets: Buckets,
  ) {
    this.spec = settings.perMinute > 0 ? { capacity: settings.perMinute, restorePerSecond: settings.perMinute / 60 } : null;
    this.failures = settings.maxFailures > 0 ? { max: settings.maxFailures, windowSeconds: settings.failureWindowSeconds } : undefined;
  }

  /** Takes one attempt from the user's budget: 0 when allowed, else the seconds until one is. */
  async take(userId: number): Promise<number> {
    if (!this.spec) return 0;
    const taken = await this.buckets.take(`pay:${userId}`, 1, this.spec);
    return taken.allowed ? 0 : taken.retryAfterSeconds;
  }

  /** The attempt was a retry of an existing payment: it costs nothing. */
  giveBack(userId: number, onError: (err: unknown) => void): void {
    if (this.spec) this.buckets.give(`pay:${userId}`, 1, this.spec).catch(onError);
  }

  get perMinute(): number {
    return this.spec?.capacity ?? 0;
  }
}
