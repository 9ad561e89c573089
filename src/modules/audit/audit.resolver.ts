import { Arg, Ctx, ID, Int, Query, Resolver, UseMiddleware } from 'type-graphql';
import { AuditEntityType, AuditLogEntry } from './audit.entity.js';
import { AuditConnection, AuditEntryType } from './audit.types.js';
import type { AuditRow } from './audit.repository.js';
import { requireAdmin } from '../auth/auth.js';
import type { Context } from '../../context.js';
import { TrackResolverPath } from '../../core/resolver-path.js';
import { Connection } from '../../core/connection.js';
import { BadUserInputError } from '../../core/errors.js';
import { assertPageSize, DEFAULT_PAGE_SIZE, parseId } from '../../core/pagination.js';

const encodeCursor = (row: { id: string }) => Buffer.from(`a:${row.id}`, 'utf8').toString('base64url');

function decodeCursor(cursor: string): string {
  const match = /^a:([1-9]\d{0,18})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!match) throw new BadUserInputError('"after" is not a valid cursor for this list', { argumentName: 'after' });
  return match[1]!;
}

@Resolver(() => AuditEntryType)
@UseMiddleware(TrackResolverPath)
export class AuditResolver {
  @Query(() => AuditConnection, { description: 'ADMIN only. The changes of one user or payment, newest first.' })
  async auditLog(
    @Arg('entityType', () => AuditEntityType) entityType: AuditEntityType,
    @Arg('entityId', () => ID) entityId: string,
    @Arg('first', () => Int, { nullable: true, defaultValue: DEFAULT_PAGE_SIZE }) first: number | null,
    @Arg('after', () => String, { nullable: true }) after: string | null,
    @Ctx() ctx: Context,
  ): Promise<Connection<AuditRow>> {
    requireAdmin(ctx.viewer);
    const size = assertPageSize(first);
    const id = parseId(entityId, 'entityId');
    const repo = ctx.em.getRepository(AuditLogEntry);
    const rows = await repo.findPage(entityType, id, size, after ? decodeCursor(after) : null);
    return new Connection(rows, size, encodeCursor, () => repo.countFor(entityType, id));
  }
}
