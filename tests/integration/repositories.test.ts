import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SqlEntityManager } from '@mikro-orm/postgresql';
import { createTestApp, type TestApp } from '../helpers/test-app.js';
import { SQL_STATS_KEY, SqlStats } from '../../src/core/sql-stats.js';
import { User } from '../../src/modules/user/user.entity.js';
import { Payment, PaymentStatus } from '../../src/modules/payment/payment.entity.js';
import { paymentEntityToRow } from '../../src/modules/payment/payment.repository.js';
import { userEntityToRow } from '../../src/modules/user/user.repository.js';
import { userHelper } from '../../src/modules/user/user.service.js';
import { QueryHelper } from '../../src/core/query-helpers.js';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp({ seed: { users: 6, paymentsPerUser: 7 } });
  // An inactive user among the rows the isActive reads see (the seeder deactivates only ids divisible by 10).
  await t.sql('update users set is_active = false where id = 4');
});
afterAll(async () => t?.close());

/** A fork whose statements are counted, as a request's would be. */
function counted(): { em: SqlEntityManager; stats: SqlStats } {
  const stats = new SqlStats();
  return { em: t.app.orm.em.fork({ loggerContext: { [SQL_STATS_KEY]: stats } }), stats };
}

const newestFirst = (ps: { createdAt: Date; id: number }[]) =>
  [...ps].sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime() || b.id - a.id).map((p) => p.id);

describe('UserRepository', () => {
  it('getUserWithPayments loads the user and all payments in one statement', async () => {
    const { em, stats } = counted();
    const user = await em.getRepository(User).getUserWithPayments(3);
    expect(user!.email).toBe('user3@paygraph.dev');
    expect(user!.payments.isInitialized()).toBe(true);
    const payments = user!.payments.getItems();
    expect(payments).toHaveLength(7);
    expect(payments.map((p) => p.id)).toEqual(newestFirst(payments));
    expect(stats.statements).toBe(1);
  });

  it('getActiveUsersWithPayments pages active users, each with payments, in one statement', async () => {
    const { em, stats } = counted();
    const users = await em.getRepository(User).getActiveUsersWithPayments(1, 3);
    expect(users.map((u) => u.id)).toEqual([2, 3, 5]);
    for (const u of users) {
      expect(u.isActive).toBe(true);
      expect(u.payments.getItems()).toHaveLength(7);
    }
    expect(stats.statements).toBe(1);
  });

  it('getUserByEmailWithPayments matches the email case-insensitively, in one statement', async () => {
    const { em, stats } = counted();
    const user = await em.getRepository(User).getUserByEmailWithPayments(' User4@PayGraph.dev ');
    expect(user!.id).toBe(4);
    expect(user!.payments.getItems()).toHaveLength(7);
    expect(stats.statements).toBe(1);
    expect(await em.getRepository(User).getUserByEmailWithPayments('none@paygraph.dev')).toBeNull();
  });
});

describe('PaymentRepository', () => {
  it('findPagesByUser: one statement for every key, `first` rows each, one more when probing, only the asked columns', async () => {
    const { em, stats } = counted();
    const pages = await em.getRepository(Payment).findPagesByUser([
      { userId: 2, first: 3, after: null, status: null, fields: ['amount'], probe: false },
      { userId: 3, first: 3, after: null, status: null, fields: [], probe: true },
      { userId: 4, first: 7, after: null, status: null, fields: [], probe: true },
    ]);
    expect(stats.statements).toBe(1);
    expect(pages.map((p) => p.length)).toEqual([3, 4, 7]);
    const truth = await t.sql<{ id: number; amount: number }>('select id, amount from payments where user_id = 2 order by created_at desc, id desc limit 3');
    expect(pages[0]).toEqual(truth.map(({ id, amount }) => ({ keyIndex: 1, id, amount })));
  });

  it('getPaymentWithUser: one joined statement', async () => {
    const { em, stats } = counted();
    const payment = await em.getRepository(Payment).getPaymentWithUser(10);
    expect(payment!.user.isInitialized()).toBe(true);
    expect(payment!.user.getEntity().email).toBe('user2@paygraph.dev');
    expect(stats.statements).toBe(1);
  });

  it('findRowWithUser: the payment and user rows an entity read would give, by id or Stripe id, one statement each', async () => {
    const { em, stats } = counted();
    const repo = em.getRepository(Payment);
    const entity = await t.app.orm.em.fork().getRepository(Payment).getPaymentWithUser(10);
    const expected = { payment: paymentEntityToRow(entity!), user: userEntityToRow(entity!.user.getEntity()) };
    expect(await repo.findRowWithUser({ id: 10 })).toEqual(expected);
    expect(await repo.findRowWithUser({ stripePaymentId: entity!.stripePaymentId! })).toEqual(expected);
    expect(await repo.findRowWithUser({ id: 999_999 })).toBeNull();
    expect(stats.statements).toBe(3);
  });

  it('getUserPaymentsWithUser: a page of one user\'s payments with the user, one statement', async () => {
    const { em, stats } = counted();
    const payments = await em.getRepository(Payment).getUserPaymentsWithUser(2, 2, 3);
    expect(payments).toHaveLength(3);
    const all = await t.sql<{ id: number }>('select id from payments where user_id = 2 order by created_at desc, id desc');
    expect(payments.map((p) => p.id)).toEqual(all.slice(2, 5).map((r) => r.id));
    for (const p of payments) expect(p.user.getEntity().id).toBe(2);
    expect(stats.statements).toBe(1);
  });

  it('getUserPaymentsByStatus and getPaymentsByStatus filter by status', async () => {
    const { em, stats } = counted();
    const repo = em.getRepository(Payment);
    const mine = await repo.getUserPaymentsByStatus(2, PaymentStatus.COMPLETED);
    const all = await repo.getPaymentsByStatus(PaymentStatus.COMPLETED, 0, 100);
    const [truth] = await t.sql<{ n: number }>(`select count(*)::int as n from payments where status = 'COMPLETED'`);
    expect(all).toHaveLength(truth!.n);
    expect(mine.length).toBeGreaterThan(0);
    for (const p of [...mine, ...all]) expect(p.status).toBe(PaymentStatus.COMPLETED);
    for (const p of mine) expect(p.user.id).toBe(2);
    expect(stats.statements).toBe(2);
  });

  it('getPaymentByStripeId and countUserPayments', async () => {
    const { em } = counted();
    const repo = em.getRepository(Payment);
    const p = await repo.getPaymentByStripeId('pi_demo_3_4');
    expect(p!.user.getEntity().id).toBe(3);
    expect(await repo.getPaymentByStripeId('pi_missing')).toBeNull();
    expect(await repo.countUserPayments(3)).toBe(7);
    const [truth] = await t.sql<{ n: number }>(`select count(*)::int as n from payments where user_id = 3 and status = 'PENDING'`);
    expect(await repo.countUserPayments(3, PaymentStatus.PENDING)).toBe(truth!.n);
  });
});

describe('QueryHelper', () => {
  it('gets by id, by filter, all by filter with whitelisted sorting, and counts', async () => {
    const { em } = counted();
    expect((await userHelper.getById(em, 2))!.email).toBe('user2@paygraph.dev');
    expect(await userHelper.getById(em, 999)).toBeNull();
    expect((await userHelper.getByFilter(em, { email: 'user5@paygraph.dev' }))!.id).toBe(5);
    expect((await userHelper.getAll(em, { skip: 2, limit: 2 })).map((u) => u.id)).toEqual([3, 4]);
    const byEmailDesc = await userHelper.getAllByFilter(em, { isActive: true }, { sortBy: 'email', sortOrder: 'desc', limit: 3 });
    expect(byEmailDesc.map((u) => u.email)).toEqual(['user6@paygraph.dev', 'user5@paygraph.dev', 'user3@paygraph.dev']);
    expect(await userHelper.count(em, { isActive: true })).toBe(5);
    expect(await userHelper.count(em, { isActive: false })).toBe(1);
  });

  it('refuses sorting by a field that is not whitelisted, and out-of-range paging', async () => {
    const { em } = counted();
    const helper = new QueryHelper(Payment, ['createdAt']);
    await expect(helper.getAllByFilter(em, {}, { sortBy: 'description' })).rejects.toMatchObject({ extensions: { code: 'BAD_USER_INPUT' } });
    await expect(helper.getAll(em, { limit: 0 })).rejects.toMatchObject({ extensions: { code: 'BAD_USER_INPUT' } });
    await expect(helper.getAll(em, { limit: 101 })).rejects.toMatchObject({ extensions: { code: 'BAD_USER_INPUT' } });
    await expect(helper.getAll(em, { skip: -1 })).rejects.toMatchObject({ extensions: { code: 'BAD_USER_INPUT' } });
  });

  it('creates, updates and deletes', async () => {
    const { em } = counted();
    const created = await userHelper.create(em, { email: 'helper@paygraph.dev', name: 'Helper' });
    expect(created.id).toBeGreaterThan(0);
    const updated = await userHelper.update(em.fork(), created.id, { name: 'Helped' });
    expect(updated!.name).toBe('Helped');
    expect(await userHelper.update(em.fork(), 999, { name: 'x' })).toBeNull();
    expect(await userHelper.delete(em.fork(), created.id)).toBe(true);
    expect(await userHelper.delete(em.fork(), created.id)).toBe(false);
    expect(await t.sql('select 1 from users where id = ?', [created.id])).toEqual([]);
  });
});

describe('schema', () => {
  it('the migrations produce exactly the schema the entities describe', async () => {
    const diff = await t.app.orm.getSchemaGenerator().getUpdateSchemaSQL({ wrap: false });
    expect(diff.trim()).toBe('');
  });

  it('the database rejects rows the entities forbid', async () => {
    await expect(t.sql(`insert into payments (user_id, amount, currency) values (2, 0, 'usd')`)).rejects.toThrow(/payments_amount_positive/);
    await expect(t.sql(`insert into payments (user_id, amount, currency) values (2, 10, 'USD')`)).rejects.toThrow(/payments_currency_iso/);
    await expect(t.sql(`insert into payments (user_id, amount, currency, status) values (2, 10, 'usd', 'LOST')`)).rejects.toThrow(/check/);
    await expect(t.sql(`insert into users (email, name) values ('Upper@X.com', 'x')`)).rejects.toThrow(/users_email_lower/);
  });
});
