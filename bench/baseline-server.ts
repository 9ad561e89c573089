/**
 * The "speed of light" for the benchmark's work on this machine: node:http + pg, the same JSON as the
 * GraphQL server for each scenario, with the fewest statements (one or two), and the same bearer-token
 * check. No framework, no GraphQL, no ORM.
 *
 *   DATABASE_URL=... JWT_SECRET=... PORT=... node --import tsx bench/baseline-server.ts
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import pg from 'pg';
import { jwtVerify } from 'jose';

const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: Number(process.env.DB_POOL_MAX ?? 10) });
const key = new TextEncoder().encode(process.env.JWT_SECRET);

type Handler = (viewer: { id: number }, variables: Record<string, string>) => Promise<unknown>;

const handlers: Record<string, Handler> = {
  /** `{ __typename }`: the same JSON, no data: what node:http costs with a token check and a body. */
  async T() {
    return { __typename: 'Query' };
  },
  async Q1() {
    const users = await pool.query<{ id: number; email: string }>('select id, email from users order by id limit 100');
    const ids = users.rows.map((u) => u.id);
    const payments = await pool.query<{ id: number; user_id: number; amount: number; status: string }>(
      `select id, user_id, amount, status from (
         select p.id, p.user_id, p.amount, p.status,
                row_number() over (partition by p.user_id order by p.created_at desc, p.id desc) as rn
         from payments p where p.user_id = any($1)) x
       where rn <= 10 order by user_id, rn`,
      [ids],
    );
    const byUser = new Map<number, { id: string; amount: number; status: string }[]>(ids.map((id) => [id, []]));
    for (const p of payments.rows) byUser.get(p.user_id)!.push({ id: String(p.id), amount: p.amount, status: p.status });
    return { users: { nodes: users.rows.map((u) => ({ id: String(u.id), email: u.email, payments: { nodes: byUser.get(u.id) } })) } };
  },
  /** Q1 with each payment's user: the same two statements, the user's email written into each payment. */
  async Q1U(viewer, variables) {
    const q1 = (await handlers.Q1!(viewer, variables)) as { users: { nodes: { email: string; payments: { nodes: Record<string, unknown>[] } }[] } };
    for (const u of q1.users.nodes) u.payments.nodes = u.payments.nodes.map((p) => ({ ...p, user: { email: u.email } }));
    return q1;
  },
  async Q2(_viewer, { id }) {
    const rows = await pool.query<{ email: string; amount: number | null; status: string | null }>(
      `select u.email, p.amount, p.status from users u
       left join lateral (select amount, status from payments where user_id = u.id order by created_at desc, id desc limit 10) p on true
       where u.id = $1`,
      [Number(id)],
    );
    if (rows.rows.length === 0) return { user: null };
    return { user: { email: rows.rows[0]!.email, payments: { nodes: rows.rows.filter((r) => r.amount !== null).map((r) => ({ amount: r.amount, status: r.status })) } } };
  },
  async Q3(viewer) {
    const rows = await pool.query<{ amount: number; status: string; email: string }>(
      `select p.amount, p.status, u.email from payments p join users u on u.id = p.user_id
       where p.user_id = $1 order by p.created_at desc, p.id desc limit 20`,
      [viewer.id],
    );
    return { paymentHistory: { nodes: rows.rows.map((r) => ({ amount: r.amount, status: r.status, user: { email: r.email } })) } };
  },
  async Q4(_viewer, { id }) {
    const rows = await pool.query<{ amount: number; email: string }>(
      'select p.amount, u.email from payments p join users u on u.id = p.user_id where p.id = $1',
      [Number(id)],
    );
    const row = rows.rows[0];
    return { payment: row ? { amount: row.amount, user: { email: row.email } } : null };
  },
  /** The same as Q4: the app gets the id written into its document, the baseline as a variable. */
  async Q4D(viewer, variables) {
    return handlers.Q4!(viewer, variables);
  },
  async Q5() {
    const rows = await pool.query<{ count: number }>(
      `select count(p.id)::int as count from (select id from users order by id limit 50) u
       left join payments p on p.user_id = u.id and p.status = 'COMPLETED'
       group by u.id order by u.id`,
    );
    return { users: { nodes: rows.rows.map((r) => ({ paymentCount: r.count })) } };
  },
};

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

const server = createServer(async (req, res) => {
  try {
    const auth = req.headers.authorization ?? '';
    const { payload } = await jwtVerify(auth.slice(7), key, { algorithms: ['HS256'] });
    const { operationName, variables } = JSON.parse(await readBody(req)) as { operationName: string; variables?: Record<string, string> };
    const handler = handlers[operationName];
    if (!handler) return send(res, 400, { errors: [{ message: `unknown operation ${operationName}` }] });
    send(res, 200, { data: await handler({ id: Number(payload.sub) }, variables ?? {}) });
  } catch (err) {
    send(res, 500, { errors: [{ message: (err as Error).message }] });
  }
});

server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  const address = server.address();
  console.log(`baseline listening on ${typeof address === 'object' && address ? address.port : '?'}`);
});
process.on('SIGTERM', () => server.close(() => pool.end().then(() => process.exit(0))));
