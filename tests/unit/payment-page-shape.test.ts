import { describe, expect, it } from 'vitest';
import { Kind, parse, visit, type FieldNode, type FragmentDefinitionNode } from 'graphql';
import { paymentPageShape } from '../../src/modules/payment/payment.fields.js';

/** The shape paymentPageShape computes for the first `payments` field of a document. */
function shapeOf(source: string) {
  const document = parse(source);
  const fragments: Record<string, FragmentDefinitionNode> = {};
  let field: FieldNode | undefined;
  for (const d of document.definitions) if (d.kind === Kind.FRAGMENT_DEFINITION) fragments[d.name.value] = d;
  visit(document, {
    Field(node) {
      if (node.name.value === 'payments' && !field) field = node;
    },
  });
  return paymentPageShape({ fieldNodes: [field!], fragments });
}

describe('paymentPageShape', () => {
  it('asks for the node fields only, without cursor column or extra row, when nothing else is selected', () => {
    expect(shapeOf('{ users { nodes { payments(first: 10) { nodes { id amount status } } } } }')).toEqual({ fields: ['amount', 'status'], probe: false });
  });

  it('maps Payment.user to the userId column and reads fields through named and inline fragments', () => {
    expect(shapeOf('{ me { payments { nodes { ...p ... on Payment { user { id } } } } } } fragment p on Payment { currency description }')).toEqual({
      fields: ['currency', 'description', 'userId'],
      probe: false,
    });
  });

  it('adds createdAt for a cursor (edges.cursor or pageInfo.endCursor) and the extra row for hasNextPage', () => {
    expect(shapeOf('{ me { payments { edges { cursor } } } }')).toEqual({ fields: ['createdAt'], probe: false });
    expect(shapeOf('{ me { payments { pageInfo { endCursor } } } }')).toEqual({ fields: ['createdAt'], probe: false });
    expect(shapeOf('{ me { payments { pageInfo { hasNextPage } } } }')).toEqual({ fields: [], probe: true });
    expect(shapeOf('{ me { payments { ...c } } } fragment c on PaymentConnection { pageInfo { ...i } edges { node { amount } } } fragment i on PageInfo { hasNextPage endCursor }')).toEqual({
      fields: ['amount', 'createdAt'],
      probe: true,
    });
  });

  it('ignores fields that are not columns (totalCount, __typename)', () => {
    expect(shapeOf('{ me { payments { totalCount __typename nodes { __typename id createdAt } } } }')).toEqual({ fields: ['createdAt'], probe: false });
  });
});
