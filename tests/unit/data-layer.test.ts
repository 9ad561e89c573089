import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { isObjectType } from 'graphql';
import { buildAppSchema } from '../../src/schema.js';
import { columnsFor, PAYMENT_ROW_KEYS } from '../../src/modules/payment/payment.fields.js';
import { paymentEntityToRow } from '../../src/modules/payment/payment.repository.js';
import { Payment, PaymentStatus } from '../../src/modules/payment/payment.entity.js';

const SRC = path.resolve(import.meta.dirname, '../../src');

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries.filter((e) => e.isFile() && e.name.endsWith('.ts')).map((e) => path.join(e.parentPath, e.name));
}

describe('one owner for each table\'s SQL', () => {
  it('services and resolvers send no SQL of their own: every statement is a repository\'s', async () => {
    const offenders: string[] = [];
    for (const file of await filesUnder(path.join(SRC, 'modules'))) {
      if (file.endsWith('.repository.ts')) continue;
      const text = await readFile(file, 'utf8');
      for (const pattern of [/\bqueryRows\b/, /\.execute\(/, /createQueryBuilder\(/, /getKnex\(/, /\b(select|insert|update|delete)\s[^'`]*\b(from|into|set)\b/i]) {
        if (pattern.test(text)) offenders.push(`${path.relative(SRC, file)} (${pattern})`);
      }
    }
    expect(offenders).toEqual([]);
  });

  it('payment rows have one column mapping, whose keys are exactly the Payment type\'s fields (plus userId for Payment.user)', async () => {
    const schema = await buildAppSchema();
    const type = schema.getType('Payment');
    if (!isObjectType(type)) throw new Error('no Payment type');
    const graphqlFields = Object.keys(type.getFields()).filter((f) => f !== 'user');
    expect([...PAYMENT_ROW_KEYS].sort()).toEqual([...graphqlFields, 'userId'].sort());
    expect(columnsFor([...PAYMENT_ROW_KEYS].filter((k) => k !== 'id'))).toHaveLength(PAYMENT_ROW_KEYS.length);
    expect(() => columnsFor(['constructor'])).toThrow(/no column for the row field "constructor"/);
  });

  it('an entity becomes a row with the same keys', () => {
    const payment = Object.assign(new Payment(), {
      id: 3,
      user: { id: 7, isInitialized: () => false } as unknown as Payment['user'],
      amount: 500,
      currency: 'usd',
      status: PaymentStatus.PENDING,
      createdAt: new Date(1_700_000_000_123),
    });
    const row = paymentEntityToRow(payment);
    expect(Object.keys(row).sort()).toEqual([...PAYMENT_ROW_KEYS].sort());
    expect(row).toMatchObject({ id: 3, userId: 7, amount: 500, createdAt: 1_700_000_000_123, stripePaymentId: null, amountRefunded: 0 });
  });
});
