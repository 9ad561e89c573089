import { randomUUID } from 'node:crypto';
import type { MikroORM, SqlEntityManager } from '@mikro-orm/postgresql';
import Stripe from 'stripe';
import { Payment, PaymentStatus } from '../payment/payment.entity.js';
import { observationsOfIntent, settle, type ProviderObservation } from '../payment/payment.settlement.js';
import { CANCELABLE } from '../payment/payment.status.js';
import type { StripeClient } from '../payment/stripe.client.js';
import { reconcilerActor } from '../audit/audit.js';
import { AuditEntityType, AuditLogEntry } from '../audit/audit.entity.js';
import { isEmptyChange, mergeChanges, type WriteChange } from '../../core/cache/index.js';
import { inTransaction, tryAdvisoryXactLock } from '../../core/sql.js';
import { attributedFork } from '../../core/sql-stats.js';

/** The advisory lock every instance's run takes: one run at a time across all instances. */
export const RECONCILE_LOCK_KEY = 0x70617967; // "payg"

export interface ReconcilerOptions {
  orm: MikroORM;
  stripe: StripeClient;
  /** Records what a run changed (the caches, the replicas' marks and the event bus learn of it). */
  written: (change: WriteChange) => Promise<void>;
  /** A payment is asked about once it has been unsettled (or its refund in flight) this long. */
  afterSeconds: number;
  /** At most this many payments per run for each of its two tasks (the next run takes the rest). */
  batchSize: number;
  /** At least this long between two Stripe calls (Stripe's rate limit: 100 read requests per second live). */
  minCallIntervalMs: number;
  /** A payment left PENDING or REQUIRES_ACTION this long is canceled (at Stripe first); 0: never. */
  expireAfterSeconds: number;
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
  /** Abandoned payments canceled (expired). */
  expired: number;
  /** Payments whose check failed (left as they were, for the next run). */
  failed: number;
  /** The run stopped early because Stripe said to slow down. */
  rateLimited: boolean;
  /** The run stopped early because the instance is shutting down. */
  stopped: boolean;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Settles payments whose webhook never came, and ends those the customer abandoned.
 *
 * - Settling: each payment still unsettled with a PaymentIntent (PENDING, REQUIRES_ACTION, PROCESSING)
 *   once it has been unchanged for `afterSeconds`, and each refund asked for that long ago and not yet
 *   recorded, has its PaymentIntent fetched (with its latest charge) and what Stripe says applied
 *   through the same settlement as the webhook: the status machine, refunds that only grow, an audit
 *   entry (actor RECONCILER) in the same transaction. A payment asked about and still unsettled goes
 *   to the back of the line, due again twice as late each time (`noteReconcileCheck`), so payments
 *   nobody pays never hold a batch and a lost webhook is always reached.
 * - Expiry: a payment left PENDING or REQUIRES_ACTION for `expireAfterSeconds` is canceled at Stripe
 *   first (idempotently), then CANCELED through the same settlement; if Stripe refuses because the
 *   customer paid after all (the cancel lost the race), what Stripe says is applied instead.
 *
 * One run at a time across instances: a run holds `pg_try_advisory_xact_lock` in a transaction of its
 * own for its duration; another instance's run finds it taken and skips. Each payment is then locked
 * and settled in its own short transaction, so webhooks are never held up by a run. A failure (Stripe
 * down, a timeout) leaves that payment as it was for the next run; a rate-limit answer ends the run.
 * `stop` ends a run between payments: a payment is either settled (with its audit entry and its
 * invalidation) or untouched, whatever Stripe call was in flight.
 */
export function createReconciler(options: ReconcilerOptions) {
  const { orm, stripe, log } = options;
  /** A fork of its own for each piece of a run, its statements attributed to the run (logs, N+1 and slow-statement reports). */
  const fresh = (runId: string): SqlEntityManager => attributedFork(orm.em, runId);
  let stopping = false;
  /** The settlement being written now (a transaction, then its invalidation): `stop` waits for it. */
  let settling: Promise<unknown> | null = null;

  /**
   * Writes what Stripe said about payment `id` (each observation on the row read again, locked), and
   * `extra` in the same transaction; then invalidates what changed. Tracked, so `stop` waits for it.
   */
  async function apply(id: number, runId: string, observations: readonly ProviderObservation[], extra?: (tx: SqlEntityManager) => Promise<WriteChange>): Promise<boolean> {
    const work = (async () => {
      const change = await inTransaction(fresh(runId), async (tx) => {
        const repo = tx.getRepository(Payment);
        let all: WriteChange = {};
        for (const observation of observations) {
          const payment = await repo.getPaymentWithUser(id, { lock: true });
          if (!payment) return all;
          all = mergeChanges(all, (await settle(tx, payment, observation, reconcilerActor(runId))).change);
        }
        if (extra) all = mergeChanges(all, await extra(tx));
        return all;
      });
      if (isEmptyChange(change)) return false;
      await options.written(change);
      return true;
    })();
    settling = work;
    try {
      return await work;
    } finally {
      if (settling === work) settling = null;
    }
  }

  async function reconcilePayment(id: number, runId: string): Promise<boolean> {
    const current = await fresh(runId).getRepository(Payment).getPaymentWithUser(id);
    if (!current?.stripePaymentId) return false;
    // What the run saw of the refunds asked for, before asking Stripe (a request made meanwhile stays in flight).
    const requestedSeen = current.refundRequestedTotal;
    const intent = await stripe.paymentIntents.retrieve(current.stripePaymentId, { expand: ['latest_charge'] });
    if (stopping) return false; // asked, not settled: untouched
    return apply(id, runId, observationsOfIntent(intent), async (tx) => {
      const repo = tx.getRepository(Payment);
      // Stripe has answered about the refunds asked for: whatever it did not record is not in flight.
      if (requestedSeen > current.amountRefunded) {
        const settled = await repo.settleRefundRequest(id, requestedSeen);
        if (settled) {
          // Audited like every change of the row. (Nothing cached shows refund requests: no tag to bump.)
          await tx.getRepository(AuditLogEntry).append(reconcilerActor(runId), [
            { entityType: AuditEntityType.PAYMENT, entityId: id, action: 'refund_request_settled', before: { refundRequestedTotal: settled.before }, after: { refundRequestedTotal: settled.after } },
          ]);
        }
      }
      // Still unsettled after this: to the back of the line, asked again later than last time.
      const after = await repo.getPaymentWithUser(id);
      if (after && [PaymentStatus.PENDING, PaymentStatus.REQUIRES_ACTION, PaymentStatus.PROCESSING].includes(after.status)) {
        await repo.noteReconcileCheck(id, options.afterSeconds);
      }
      return {};
    });
  }

  async function expirePayment(id: number, runId: string): Promise<boolean> {
    const payment = await fresh(runId).getRepository(Payment).getPaymentWithUser(id);
    if (!payment || !CANCELABLE.includes(payment.status)) return false;
    // Stripe never heard of it (or has no such intent): nothing can be paid; canceled here.
    const cancelHere = () =>
      apply(id, runId, [], async (tx) => {
        const repo = tx.getRepository(Payment);
        // Unlinked: unless a completion links an intent meanwhile (that one would have to be canceled at Stripe).
        const canceled = payment.stripePaymentId ? await repo.cancelPending(id, payment.status) : await repo.cancelUnlinked(id, payment.status, null);
        if (!canceled) return {};
        await tx.getRepository(AuditLogEntry).append(reconcilerActor(runId), [
          { entityType: AuditEntityType.PAYMENT, entityId: id, action: 'status_changed', before: { status: payment.status }, after: { status: PaymentStatus.CANCELED } },
        ]);
        return { payments: [{ id, userId: payment.user.id, stripePaymentIds: [payment.stripePaymentId] }] };
      });
    if (!payment.stripePaymentId) return cancelHere();
    let intent: Stripe.PaymentIntent;
    try {
      // A key per call: canceling is idempotent by nature, and no 500 saved under an old key is replayed.
      intent = await stripe.paymentIntents.cancel(payment.stripePaymentId, { cancellation_reason: 'abandoned' }, { idempotencyKey: `expire:${id}:${randomUUID()}` });
    } catch (err) {
      if (!(err instanceof Stripe.errors.StripeInvalidRequestError)) throw err;
      if (err.code === 'resource_missing') return stopping ? false : cancelHere();
      // Stripe would not cancel it: the customer paid (or is paying) after all. Stripe's word is applied.
      intent = await stripe.paymentIntents.retrieve(payment.stripePaymentId, { expand: ['latest_charge'] });
    }
    if (stopping) return false;
    return apply(id, runId, observationsOfIntent(intent));
  }

  /** Runs `task` over `ids` with the pause between Stripe calls; false when the run must end. */
  async function each(
    ids: number[],
    report: ReconcileReport,
    task: (id: number) => Promise<boolean>,
    onChange: () => void,
    onFailure?: (id: number) => Promise<void>,
  ): Promise<boolean> {
    for (const [n, id] of ids.entries()) {
      if (stopping) {
        report.stopped = true;
        return false;
      }
      if (n > 0) await sleep(options.minCallIntervalMs);
      report.checked++;
      try {
        if (await task(id)) onChange();
      } catch (err) {
        report.failed++;
        log.warn({ err, paymentId: id, runId: report.runId }, 'reconciliation of a payment failed; the next run retries it');
        // A payment that keeps failing must not hold the front of the line either.
        await onFailure?.(id).catch(() => undefined);
        if (err instanceof Stripe.errors.StripeRateLimitError) {
          report.rateLimited = true;
          return false;
        }
      }
    }
    return true;
  }

  async function runOnce(): Promise<ReconcileReport> {
    const report: ReconcileReport = { runId: `reconcile:${randomUUID()}`, skipped: false, checked: 0, changed: 0, expired: 0, failed: 0, rateLimited: false, stopped: false };
    await inTransaction(fresh(report.runId), async (leader) => {
      if (!(await tryAdvisoryXactLock(leader, RECONCILE_LOCK_KEY))) {
        report.skipped = true;
        return;
      }
      const repo = leader.getRepository(Payment);
      // Abandoned payments first: what expires needs no settling.
      if (options.expireAfterSeconds > 0) {
        const expirable = await repo.findExpirableIds(options.expireAfterSeconds, options.batchSize);
        if (!(await each(expirable, report, (id) => expirePayment(id, report.runId), () => report.expired++))) return;
      }
      const ids = await repo.findUnsettledIds(options.afterSeconds, options.batchSize);
      await each(
        ids,
        report,
        (id) => reconcilePayment(id, report.runId),
        () => report.changed++,
        (id) => fresh(report.runId).getRepository(Payment).noteReconcileFailure(id),
      );
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
        if (running || stopping) return;
        running = runOnce()
          // A run cut short by the shutdown (its connection closed under it) is no failure to report.
          .catch((err: unknown) => stopping || log.warn({ err }, 'reconciliation run failed'))
          .finally(() => (running = null));
      }, intervalSeconds * 1000);
      timer.unref();
    },
    /**
     * Stops the timer and the run in progress between payments: waits for the settlement being
     * written (if any), not for the run's remaining payments nor a Stripe call in flight (whose
     * answer is then dropped: that payment stays untouched for the next run).
     */
    async stop(): Promise<void> {
      stopping = true;
      if (timer) clearInterval(timer);
      timer = null;
      await settling?.catch(() => undefined);
    },
  };
}

export type Reconciler = ReturnType<typeof createReconciler>;
