import { epochMs } from '../../core/sql.js';
import { Kind, type FieldNode, type FragmentDefinitionNode, type GraphQLResolveInfo, type SelectionSetNode } from 'graphql';

/** Payment columns a page query may select, by GraphQL field name (id, userId, createdAt always come). */
const OPTIONAL_COLUMNS: Record<string, string> = {
  amount: 'p.amount as "amount"',
  currency: 'p.currency as "currency"',
  status: 'p.status as "status"',
  stripePaymentId: 'p.stripe_payment_id as "stripePaymentId"',
  description: 'p.description as "description"',
  failureReason: 'p.failure_reason as "failureReason"',
  amountRefunded: 'p.amount_refunded as "amountRefunded"',
};

const ALWAYS_COLUMNS = ['p.id as "id"', 'p.user_id as "userId"', epochMs('p.created_at', 'createdAt')];

/** Every optional Payment field: what a full `PaymentRow` carries. */
export const ALL_PAYMENT_FIELDS: readonly string[] = Object.keys(OPTIONAL_COLUMNS);

/** The select list of `payments p` for these fields, aliased to `PaymentRow` keys. */
export function columnsFor(fields: readonly string[]): string[] {
  return [...ALWAYS_COLUMNS, ...fields.map((f) => OPTIONAL_COLUMNS[f]!)];
}

function collect(selectionSet: SelectionSetNode | undefined, fragments: Record<string, FragmentDefinitionNode>, out: Set<string>, depth: number): void {
  if (!selectionSet || depth > 10) return;
  for (const s of selectionSet.selections) {
    if (s.kind === Kind.FIELD) {
      if (s.name.value in OPTIONAL_COLUMNS) out.add(s.name.value);
    } else if (s.kind === Kind.INLINE_FRAGMENT) {
      collect(s.selectionSet, fragments, out, depth + 1);
    } else {
      collect(fragments[s.name.value]?.selectionSet, fragments, out, depth + 1);
    }
  }
}

function nodeSelections(fieldNode: FieldNode, fragments: Record<string, FragmentDefinitionNode>): SelectionSetNode[] {
  const sets: SelectionSetNode[] = [];
  const visit = (selectionSet: SelectionSetNode | undefined, depth: number) => {
    if (!selectionSet || depth > 10) return;
    for (const s of selectionSet.selections) {
      if (s.kind === Kind.FIELD && s.name.value === 'nodes' && s.selectionSet) sets.push(s.selectionSet);
      else if (s.kind === Kind.FIELD && s.name.value === 'edges' && s.selectionSet) {
        for (const e of s.selectionSet.selections) if (e.kind === Kind.FIELD && e.name.value === 'node' && e.selectionSet) sets.push(e.selectionSet);
      } else if (s.kind === Kind.INLINE_FRAGMENT) visit(s.selectionSet, depth + 1);
      else if (s.kind === Kind.FRAGMENT_SPREAD) visit(fragments[s.name.value]?.selectionSet, depth + 1);
    }
  };
  visit(fieldNode.selectionSet, 0);
  return sets;
}

const memo = new WeakMap<readonly FieldNode[], string[]>();

/**
 * The Payment fields a connection field's selection asks for under `nodes` or `edges.node` (with
 * fragments): its page query selects those columns only, which matters when a page is 1,000 rows.
 */
export function selectedPaymentFields(info: Pick<GraphQLResolveInfo, 'fieldNodes' | 'fragments'>): string[] {
  const known = memo.get(info.fieldNodes);
  if (known) return known;
  const fields = new Set<string>();
  for (const fieldNode of info.fieldNodes) for (const set of nodeSelections(fieldNode, info.fragments)) collect(set, info.fragments, fields, 0);
  const sorted = [...fields].sort();
  memo.set(info.fieldNodes, sorted);
  return sorted;
}
