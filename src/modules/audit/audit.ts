import { AuditActorType, AuditEntityType } from './audit.entity.js';

/** Who is writing, and on behalf of which request: every write path is given one. */
export interface AuditContext {
  actorType: AuditActorType;
  actorId: number | null;
  /** The request's own (server-made) id, the Stripe event id, or the reconciliation run's id. */
  requestId: string | null;
  /** The `x-request-id` the client sent, recorded beside `requestId` (never instead of it). */
  clientRequestId: string | null;
}

export const stripeActor = (eventId: string): AuditContext => ({ actorType: AuditActorType.STRIPE, actorId: null, requestId: eventId, clientRequestId: null });
export const reconcilerActor = (runId: string): AuditContext => ({ actorType: AuditActorType.RECONCILER, actorId: null, requestId: runId, clientRequestId: null });
export const userActor = (userId: number, requestId: string | null, clientRequestId: string | null): AuditContext => ({
  actorType: AuditActorType.USER,
  actorId: userId,
  requestId,
  clientRequestId,
});

/** One change to append. */
export interface AuditChange {
  entityType: AuditEntityType;
  entityId: number;
  action: string;
  before: Record<string, unknown> | null;
  after: Record<string, unknown> | null;
}

/** The fields whose values differ between two snapshots, each side with its own value; null when none do. */
export function changedFields(
  before: Record<string, unknown>,
  after: Record<string, unknown>,
): { before: Record<string, unknown>; after: Record<string, unknown> } | null {
  const b: Record<string, unknown> = {};
  const a: Record<string, unknown> = {};
  for (const key of new Set([...Object.keys(before), ...Object.keys(after)])) {
    const x = normalise(before[key]);
    const y = normalise(after[key]);
    if (JSON.stringify(x) !== JSON.stringify(y)) {
      b[key] = x;
      a[key] = y;
    }
  }
  return Object.keys(a).length > 0 ? { before: b, after: a } : null;
}

function normalise(value: unknown): unknown {
  if (value instanceof Date) return value.toISOString();
  return value === undefined ? null : value;
}
