import { Field, ID, ObjectType, registerEnumType } from 'type-graphql';
import { GraphQLDateTime, GraphQLJSONObject } from 'graphql-scalars';
import { AuditActorType, AuditEntityType } from './audit.entity.js';
import { connectionTypes } from '../../core/connection.js';

registerEnumType(AuditEntityType, { name: 'AuditEntityType' });
registerEnumType(AuditActorType, {
  name: 'AuditActorType',
  valuesConfig: {
    USER: { description: 'A signed-in user (actorId).' },
    STRIPE: { description: "A Stripe webhook event (its id is the entry's requestId)." },
    RECONCILER: { description: 'The reconciliation job, which asked Stripe for the state of a payment.' },
  },
});

/** One change in the audit log; resolves from an `AuditRow`. */
@ObjectType('AuditEntry', { simpleResolvers: true })
export class AuditEntryType {
  @Field(() => ID)
  id!: string;

  @Field(() => AuditActorType)
  actorType!: AuditActorType;

  @Field(() => ID, { nullable: true, description: 'The user who made the change (USER actors).' })
  actorId!: number | null;

  @Field(() => AuditEntityType)
  entityType!: AuditEntityType;

  @Field(() => ID)
  entityId!: number;

  @Field(() => String, { description: 'create, update, delete, cancel_requested, refund_requested, status_changed, refund_recorded...' })
  action!: string;

  @Field(() => GraphQLJSONObject, { nullable: true, description: 'The changed fields as they were (null for a creation).' })
  before!: Record<string, unknown> | null;

  @Field(() => GraphQLJSONObject, { nullable: true, description: 'The changed fields as they became.' })
  after!: Record<string, unknown> | null;

  @Field(() => String, { nullable: true, description: "The request's own id (the x-request-id the server answered with), the Stripe event id, or the reconciliation run." })
  requestId!: string | null;

  @Field(() => String, { nullable: true, description: 'The x-request-id the client sent with the request, if any: recorded beside requestId, never instead of it.' })
  clientRequestId!: string | null;

  @Field(() => GraphQLDateTime)
  createdAt!: number;
}

export const { ConnectionType: AuditConnection } = connectionTypes('AuditEntry', AuditEntryType);
