import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/test-app.js';

let t: TestApp;
let admin: string;
let user2: string;

beforeAll(async () => {
  t = await createTestApp({ seed: { users: 3, paymentsPerUser: 2 } });
  admin = await t.adminToken();
  user2 = await t.userToken(2);
});
afterAll(async () => t?.close());

const code = (r: { body: { errors?: { extensions?: Record<string, any> }[] } }) => r.body.errors?.[0]?.extensions?.code;
const countUsers = async () => (await t.sql<{ n: number }>('select count(*)::int as n from users'))[0]!.n;

const CREATE = 'mutation($input: CreateUserInput!) { createUser(input: $input) { id email name role isActive } }';

describe('createUser', () => {
  it('creates a user with the email stored lower-case', async () => {
    const r = await t.gql(CREATE, { token: admin, variables: { input: { email: 'New.Person@Example.COM', name: 'New Person' } } });
    expect(r.body.errors).toBeUndefined();
    expect(r.body.data!.createUser).toMatchObject({ email: 'new.person@example.com', name: 'New Person', role: 'USER', isActive: true });
    const [row] = await t.sql<{ email: string }>('select email from users where id = ?', [Number(r.body.data!.createUser.id)]);
    expect(row!.email).toBe('new.person@example.com');
  });

  it('refuses a duplicate email, in any case, with CONFLICT', async () => {
    const before = await countUsers();
    const r = await t.gql(CREATE, { token: admin, variables: { input: { email: 'USER2@paygraph.dev', name: 'Dup' } } });
    expect(code(r)).toBe('CONFLICT');
    expect(await countUsers()).toBe(before);
  });

  it.each([
    [{ email: 'not-an-email', name: 'X' }],
    [{ email: 'ok@example.com', name: '' }],
    [{ email: 'ok@example.com', name: 'x'.repeat(201) }],
    [{ email: `${'a'.repeat(320)}@example.com`, name: 'Long' }],
  ])('refuses invalid input %j with BAD_USER_INPUT and writes nothing', async (input) => {
    const before = await countUsers();
    const r = await t.gql(CREATE, { token: admin, variables: { input } });
    expect(code(r)).toBe('BAD_USER_INPUT');
    expect(r.statements).toBe(0);
    expect(await countUsers()).toBe(before);
  });

  it('is for ADMINs only', async () => {
    const r = await t.gql(CREATE, { token: user2, variables: { input: { email: 'x@example.com', name: 'X' } } });
    expect(code(r)).toBe('FORBIDDEN');
  });
});

describe('updateUser', () => {
  const UPDATE = 'mutation($id: ID!, $input: UpdateUserInput!) { updateUser(id: $id, input: $input) { id email name role } }';

  it('lets a USER rename themself', async () => {
    const r = await t.gql(UPDATE, { token: user2, variables: { id: '2', input: { name: 'Renamed' } } });
    expect(r.body.data!.updateUser).toMatchObject({ id: '2', name: 'Renamed', role: 'USER' });
  });

  it('does not let a USER change their role, or anyone else', async () => {
    expect(code(await t.gql(UPDATE, { token: user2, variables: { id: '2', input: { role: 'ADMIN' } } }))).toBe('FORBIDDEN');
    expect(code(await t.gql(UPDATE, { token: user2, variables: { id: '3', input: { name: 'Hacked' } } }))).toBe('NOT_FOUND');
    const [row] = await t.sql<{ role: string; name: string }>('select role, name from users where id = 3');
    expect(row).toEqual({ role: 'USER', name: 'Demo User 3' });
  });

  it('lets an ADMIN change a role, and answers CONFLICT for a taken email', async () => {
    expect((await t.gql(UPDATE, { token: admin, variables: { id: '3', input: { role: 'ADMIN' } } })).body.data!.updateUser.role).toBe('ADMIN');
    expect(code(await t.gql(UPDATE, { token: admin, variables: { id: '3', input: { email: 'user2@paygraph.dev' } } }))).toBe('CONFLICT');
    expect(code(await t.gql(UPDATE, { token: admin, variables: { id: '999', input: { name: 'Nobody' } } }))).toBe('NOT_FOUND');
  });
});

describe('deleteUser', () => {
  const DELETE = 'mutation($id: ID!) { deleteUser(id: $id) }';

  it('is for ADMINs only', async () => {
    expect(code(await t.gql(DELETE, { token: user2, variables: { id: '3' } }))).toBe('FORBIDDEN');
    expect(await t.sql('select deleted_at from users where id = 3')).toEqual([{ deleted_at: null }]);
  });

  it('soft-deletes a user with payments: gone from every read, their token refused, their payments kept and still showing them to ADMINs', async () => {
    const token3 = await t.userToken(3);
    expect((await t.gql('{ me { id } }', { token: token3 })).body.data).toEqual({ me: { id: '3' } });
    const payments = await t.sql<{ id: number }>('select id from payments where user_id = 3 order by id');
    expect(payments.length).toBeGreaterThan(0);

    expect((await t.gql(DELETE, { token: admin, variables: { id: '3' } })).body.data).toEqual({ deleteUser: true });

    // Gone for everyone, on every path.
    expect((await t.gql('{ user(id: "3") { id } }', { token: admin })).body.data).toEqual({ user: null });
    expect((await t.gql('{ userByEmail(email: "user3@paygraph.dev") { id } }', { token: admin })).body.data).toEqual({ userByEmail: null });
    const listed = await t.gql('{ users(first: 100) { totalCount nodes { id } } }', { token: admin });
    expect(listed.body.data!.users.nodes.map((n: { id: string }) => n.id)).not.toContain('3');
    expect(listed.body.data!.users.totalCount).toBe(listed.body.data!.users.nodes.length);
    // ADMINs can list deleted users when they ask.
    const deleted = await t.gql('{ users(filter: { deleted: true }) { nodes { id deletedAt } } }', { token: admin });
    expect(deleted.body.data!.users.nodes).toEqual([{ id: '3', deletedAt: expect.any(String) }]);

    // Their token stops working at once.
    const refused = await t.gql('{ me { id } }', { token: token3 });
    expect(refused.status).toBe(401);
    expect(refused.body.errors?.[0]).toMatchObject({ message: expect.stringMatching(/deactivated or deleted/), extensions: { code: 'UNAUTHENTICATED' } });

    // Their payments stay, and an ADMIN still sees whose they were.
    expect(await t.sql('select id from payments where user_id = 3 order by id')).toEqual(payments);
    const history = await t.gql('{ payments(userId: "3", first: 100) { nodes { id user { id email deletedAt } } } }', { token: admin });
    expect(history.body.errors).toBeUndefined();
    expect(history.body.data!.payments.nodes).toHaveLength(payments.length);
    for (const n of history.body.data!.payments.nodes) expect(n.user).toMatchObject({ id: '3', email: 'user3@paygraph.dev', deletedAt: expect.any(String) });

    // Deleting again: it is gone.
    expect(code(await t.gql(DELETE, { token: admin, variables: { id: '3' } }))).toBe('NOT_FOUND');
    // The email may be registered again.
    const again = await t.gql(CREATE, { token: admin, variables: { input: { email: 'user3@paygraph.dev', name: 'Again' } } });
    expect(again.body.errors).toBeUndefined();
    expect(again.body.data!.createUser.id).not.toBe('3');
  });
});
