import { epochMs } from '../../core/sql.js';
import type { PaymentRow } from './payment.repository.js';
import { Kind, type FieldNode, type FragmentDefinitionNode, type GraphQLResolveInfo, type SelectionSetNode } from 'graphql';

/**
 * The one mapping from `payments` columns to `PaymentRow` keys: every read of payment rows selects
 * from here, aliased to the key. Each key is the GraphQL field of the same name, except `userId`,
 * which `Payment.user` needs. `id` always comes.
 */
const OPTIONAL_COLUMNS: Readonly<Record<Exclude<keyof PaymentRow, 'id'>, string>> = {
  amount: 'p.amount as "amount"',
  createdAt: epochMs('p.created_at', 'createdAt'),
  currency: 'p.currency as "currency"',
  status: 'p.status as "status"',
  stripePaymentId: 'p.stripe_payment_id as "stripePaymentId"',
  description: 'p.description as "description"',
  failureReason: 'p.failure_reason as "failureReason"',
  amountRefunded: 'p.amount_refunded as "amountRefunded"',
  userId: 'p.user_id as "userId"',
};

/** The row key each GraphQL field of Payment needs, where it is not the field's own name. */
const FIELD_COLUMN: Readonly<Record<string, string>> = { user: 'userId' };

const ALWAYS_COLUMNS = ['p.id as "id"'];

function isOptionalColumn(field: string): field is keyof typeof OPTIONAL_COLUMNS {
  return Object.hasOwn(OPTIONAL_COLUMNS, field);
}

/** Every optional column: what a full `PaymentRow` carries. */
export const ALL_PAYMENT_FIELDS: readonly string[] = Object.keys(OPTIONAL_COLUMNS);

/** Every key of a full `PaymentRow`. */
export const PAYMENT_ROW_KEYS: readonly (keyof PaymentRow)[] = ['id', ...(ALL_PAYMENT_FIELDS as (keyof PaymentRow)[])];

/** The select list of `payments p` for these fields, aliased to `PaymentRow` keys. */
export function columnsFor(fields: readonly string[]): string[] {
  return [
    ...ALWAYS_COLUMNS,
    ...fields.map((f) => {
      if (!isOptionalColumn(f)) throw new Error(`payments has no column for the row field "${f}"`);
      return OPTIONAL_COLUMNS[f];
    }),
  ];
}

/** The full select list of `payments p`, aliased to `PaymentRow` keys. */
export const PAYMENT_COLUMNS = columnsFor(ALL_PAYMENT_FIELDS).join(', ');

/** The payment half of a row that also carries other (prefixed) columns: exactly the `PaymentRow` keys. */
export function pickPaymentRow(raw: Record<string, unknown>): PaymentRow {
  const row: Record<string, unknown> = {};
  for (const key of PAYMENT_ROW_KEYS) row[key] = raw[key];
  return row as unknown as PaymentRow;
}

/** The sub-selections of each field name under these selection sets, fragments flattened. */
function subfields(sets: readonly SelectionSetNode[], fragments: Record<string, FragmentDefinitionNode>): Map<string, SelectionSetNode[]> {
  const out = new Map<string, SelectionSetNode[]>();
  const visit = (set: SelectionSetNode | undefined, depth: number) => {
    if (!set || depth > 10) return;
    for (const s of set.selections) {
      if (s.kind === Kind.FIELD) {
        const list = out.get(s.name.value) ?? [];
        if (s.selectionSet) list.push(s.selectionSet);
        out.set(s.name.value, list);
      } else if (s.kind === Kind.INLINE_FRAGMENT) {
        visit(s.selectionSet, depth + 1);
      } else {
        visit(fragments[s.name.value]?.selectionSet, depth + 1);
      }
    }
  };
  for (const set of sets) visit(set, 0);
  return out;
}

/** What a page query must fetch for one `payments` connection field. */
export interface PaymentPageShape {
  /** Optional columns (`PaymentRow` keys), sorted. */
  fields: string[];
  /** One row more than `first`: `pageInfo.hasNextPage` is asked for. */
  probe: boolean;
}

const memo = new WeakMap<readonly FieldNode[], PaymentPageShape>();

/**
 * What a connection field's selection needs (with fragments): the Payment columns asked for under
 * `nodes` or `edges.node`, `createdAt` when a cursor is (`edges.cursor`, `pageInfo.endCursor`), and
 * the extra row only when `pageInfo.hasNextPage` is. Its page query fetches that and nothing more,
 * which matters when a page is a thousand rows.
 */
export function paymentPageShape(info: Pick<GraphQLResolveInfo, 'fieldNodes' | 'fragments'>): PaymentPageShape {
  const known = memo.get(info.fieldNodes);
  if (known) return known;
  const { fragments } = info;
  const connection = subfields(info.fieldNodes.flatMap((f) => (f.selectionSet ? [f.selectionSet] : [])), fragments);
  const edges = subfields(connection.get('edges') ?? [], fragments);
  const pageInfo = subfields(connection.get('pageInfo') ?? [], fragments);
  const nodeFields = subfields([...(connection.get('nodes') ?? []), ...(edges.get('node') ?? [])], fragments);
  const fields = new Set<string>();
  for (const name of nodeFields.keys()) {
    const column = Object.hasOwn(FIELD_COLUMN, name) ? FIELD_COLUMN[name]! : name;
    if (isOptionalColumn(column)) fields.add(column);
  }
  if (edges.has('cursor') || pageInfo.has('endCursor')) fields.add('createdAt');
  const shape = { fields: [...fields].sort(), probe: pageInfo.has('hasNextPage') };
  memo.set(info.fieldNodes, shape);
  return shape;
}
