import { EntityRepository } from '@mikro-orm/postgresql';
import type { AuditLogEntry, AuditEntityType } from './audit.entity.js';
import type { AuditChange, AuditContext } from './audit.js';
import { epochMs, queryRows } from '../../core/sql.js';

/** An entry as the GraphQL layer serves it. */
export interface AuditRow {
  id: string;
  actorType: string;
  actorId: number | null;
  entityType: AuditEntityType;
  entityId: number;
  action: string;
  before: Record<string, unknown> | null;
  after: Record<string, unknown> | null;
  requestId: string | null;
  clientRequestId: string | null;
  /** Epoch milliseconds. */
  createdAt: number;
}

const COLUMNS = [
  'a.id::text as "id"',
  'a.actor_type as "actorType"',
  'a.actor_id as "actorId"',
  'a.entity_type as "entityType"',
  'a.entity_id as "entityId"',
  'a.action as "action"',
  'a.before as "before"',
  'a.after as "after"',
  'a.request_id as "requestId"',
  'a.client_request_id as "clientRequestId"',
  epochMs('a.created_at', 'createdAt'),
].join(', ');

/** `audit_log`: appended to inside the transaction of each write; read newest first. */
export class AuditLogRepository extends EntityRepository<AuditLogEntry> {
  /** Appends entries (one statement); call it with the transaction's EntityManager. */
  async append(actor: AuditContext, changes: readonly AuditChange[]): Promise<void> {
    if (changes.length === 0) return;
    const values: unknown[] = [];
    const rows = changes.map((c) => {
      values.push(actor.actorType, actor.actorId, c.entityType, c.entityId, c.action, json(c.before), json(c.after), actor.requestId, actor.clientRequestId);
      return '(?, ?, ?, ?, ?, ?::jsonb, ?::jsonb, ?, ?)';
    });
    await queryRows(
      this.getEntityManager(),
      `insert into audit_log (actor_type, actor_id, entity_type, entity_id, action, before, after, request_id, client_request_id) values ${rows.join(', ')}`,
      values,
    );
  }

  /** One keyset page, newest first, `first + 1` rows (the extra one says a next page exists). One statement. */
  async findPage(entityType: AuditEntityType, entityId: number, first: number, afterId: string | null): Promise<AuditRow[]> {
    const params: unknown[] = [entityType, entityId];
    let cursor = '';
    if (afterId !== null) {
      cursor = 'and a.id < ?::bigint';
      params.push(afterId);
    }
    params.push(first + 1);
    return queryRows<AuditRow>(
      this.getEntityManager(),
      `select ${COLUMNS} from audit_log a where a.entity_type = ? and a.entity_id = ? ${cursor} order by a.id desc limit ?`,
      params,
    );
  }

  async countFor(entityType: AuditEntityType, entityId: number): Promise<number> {
    const [row] = await queryRows<{ count: number }>(
      this.getEntityManager(),
      'select count(*)::int as count from audit_log a where a.entity_type = ? and a.entity_id = ?',
      [entityType, entityId],
    );
    return row?.count ?? 0;
  }
}

function json(value: Record<string, unknown> | null): string | null {
  return value === null ? null : JSON.stringify(value);
}
