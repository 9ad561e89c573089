import { randomUUID } from 'node:crypto';
import type { MikroORM, SqlEntityManager } from '@mikro-orm/postgresql';
import Stripe from 'stripe';
import { Payment } from '../payment/payment.entity.js';
import { observationsOfIntent, settle } from '../payment/payment.settlement.js';
import type { StripeClient } from '../payment/stripe.client.js';
import { reconcilerActor } from '../audit/audit.js';
import { inTransaction, tryAdvisoryXactLock } from '../../core/sql.js';
import { attributedFork } from '../../core/sql-stats.js';

/** The advisory lock every instance's run takes: one run at a time across all instances. */
export const RECONCILE_LOCK_KEY = 0x70617967; // "payg"

export interface ReconcilerOptions {
  orm: MikroORM;
  stripe: StripeClient;
  /** Bumps the cache tags of what a run changed. */
  invalidate: (tags: string[]) => Promise<void>;
  /** A payment is asked about once it has been unsettled (or its refund in flight) this long. */
  afterSeconds: number;
  /** At most this many payments per run (the next run takes the rest). */
  batchSize: number;
  /** At least this long between two Stripe calls (Stripe's rate limit: 100 read requests per second live). */
  minCallIntervalMs: number;
  log: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void };
}

export interface ReconcileReport {
  runId: string;
  /** Another instance held the lock: this one did nothing. */
  skipped: boolean;
  /** Payments asked about. */
  checked: number;
  /** Payments whose state changed. */
  changed: number;
  /** Payments whose check failed (left as they were, for the next run). */
  failed: number;
  /** The run stopped early because Stripe said to slow down. */
  rateLimited: boolean;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Settles payments whose webhook never came: for each payment still unsettled with a PaymentIntent
 * (PENDING, REQUIRES_ACTION, PROCESSING) after `afterSeconds`, and each refund asked for that long ago
 * and not yet recorded, it fetches the PaymentIntent (with its latest charge) and applies what Stripe
 * says through the same settlement as the webhook: the status machine, refunds that only grow, an
 * audit entry (actor RECONCILER) in the same transaction. A webhook that arrives later changes nothing.
 *
 * One run at a time across instances: a run holds `pg_try_advisory_xact_lock` in a transaction of its
 * own for its duration; another instance's run finds it taken and skips. Each payment is then locked
 * and settled in its own short transaction, so webhooks are never held up by a run. A failure (Stripe
 * down, a timeout) leaves that payment as it was for the next run; a rate-limit answer ends the run.
 */
export function createReconciler(options: ReconcilerOptions) {
  const { orm, stripe, log } = options;
  /** A fork of its own for each piece of a run, its statements attributed to the run (logs, N+1 and slow-statement reports). */
  const fresh = (runId: string): SqlEntityManager => attributedFork(orm.em, runId);

  async function reconcilePayment(id: number, runId: string): Promise<boolean> {
    const current = await fresh(runId).getRepository(Payment).getPaymentWithUser(id);
    if (!current?.stripePaymentId) return false;
    const intent = await stripe.paymentIntents.retrieve(current.stripePaymentId, { expand: ['latest_charge'] });
    const observations = observationsOfIntent(intent);
    const refundInFlight = current.refundRequestedTotal > current.amountRefunded;
    const tags = await inTransaction(fresh(runId), async (tx) => {
      const repo = tx.getRepository(Payment);
      const all: string[] = [];
      for (const observation of observations) {
        // Read again, locked, before each: the previous observation (or a webhook) may have changed it.
        const payment = await repo.getPaymentWithUser(id, { lock: true });
        if (!payment) return all;
        all.push(...(await settle(tx, payment, observation, reconcilerActor(runId))).tags);
      }
      // Stripe has answered about the refunds asked for: whatever it did not record is not in flight.
      if (refundInFlight) await repo.settleRefundRequest(id);
      return all;
    });
    if (tags.length > 0) await options.invalidate([...new Set(tags)]);
    return tags.length > 0;
  }

  async function runOnce(): Promise<ReconcileReport> {
    const report: ReconcileReport = { runId: `reconcile:${randomUUID()}`, skipped: false, checked: 0, changed: 0, failed: 0, rateLimited: false };
    await inTransaction(fresh(report.runId), async (leader) => {
      if (!(await tryAdvisoryXactLock(leader, RECONCILE_LOCK_KEY))) {
        report.skipped = true;
        return;
      }
      const ids = await leader.getRepository(Payment).findUnsettledIds(options.afterSeconds, options.batchSize);
      for (const [n, id] of ids.entries()) {
        if (n > 0) await sleep(options.minCallIntervalMs);
        report.checked++;
        try {
          if (await reconcilePayment(id, report.runId)) report.changed++;
        } catch (err) {
          report.failed++;
          log.warn({ err, paymentId: id, runId: report.runId }, 'reconciliation of a payment failed; the next run retries it');
          if (err instanceof Stripe.errors.StripeRateLimitError) {
            report.rateLimited = true;
            break;
          }
        }
      }
    });
    if (!report.skipped && report.checked > 0) log.info({ ...report }, 'reconciliation run');
    return report;
  }

  let timer: NodeJS.Timeout | null = null;
  let running: Promise<unknown> | null = null;
  return {
    runOnce,
    /** Runs every `intervalSeconds` in this process (never two at once); `stop` ends it. */
    start(intervalSeconds: number): void {
      if (timer || intervalSeconds <= 0) return;
      timer = setInterval(() => {
        if (running) return;
        running = runOnce()
          .catch((err: unknown) => log.warn({ err }, 'reconciliation run failed'))
          .finally(() => (running = null));
      }, intervalSeconds * 1000);
      timer.unref();
    },
    /** Stops the timer and waits for a run in progress. */
    async stop(): Promise<void> {
      if (timer) clearInterval(timer);
      timer = null;
      await running;
    },
  };
}

export type Reconciler = ReturnType<typeof createReconciler>;
