// A second process that makes load on a running server for the fault tests (tests/helpers/faults.ts):
//   node tests/helpers/load-generator.mjs '<JSON options>'
// `concurrency` workers send requests one after another for `durationMs`, each answer classified
// (answered or not, status, error codes, Retry-After, stale reads), per `bucketMs` slice of time. Prints
// one JSON report on stdout when done. Bounded in time; loopback only.
const options = JSON.parse(process.argv[2]);
const { url, readUrl = url, durationMs, concurrency, scenario, tokens, users = 1000, bucketMs = 250, requestTimeoutMs = 10_000 } = options;

const startedAt = Date.now();
const report = {
  startedAt,
  bucketMs,
  total: 0,
  ok: 0,
  /** A request that got no HTTP answer (connection refused or reset, timeout): the server failed it. */
  unanswered: 0,
  byStatus: {},
  byCode: {},
  /** Errors without `extensions.code`, and 5xx answers that are not GraphQL's shape: uncoded failures. */
  uncoded: 0,
  /** 503 answers without a Retry-After header. */
  missingRetryAfter: 0,
  /** Reads that returned a value older than the writer's last acknowledged write (scenario readYourWrites). */
  stale: 0,
  writes: 0,
  /** Per user id, the last name a write of readYourWrites had acknowledged (the test checks it was kept). */
  lastWritten: {},
  buckets: [],
  samples: [],
  payments: [],
};

function bucket(at) {
  const i = Math.floor((at - startedAt) / bucketMs);
  while (report.buckets.length <= i) report.buckets.push({ ok: 0, failed: 0 });
  return report.buckets[i];
}

function sample(kind, detail) {
  if (report.samples.length < 8) report.samples.push({ kind, at: Date.now() - startedAt, ...detail });
}

/** One POST /graphql; answers { status, body, headers } or null when no answer came. */
async function post(body, token, headers = {}, base = url) {
  const at = Date.now();
  report.total++;
  let res;
  let text;
  try {
    res = await fetch(`${base}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, ...headers },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(requestTimeoutMs),
    });
    text = await res.text();
  } catch (err) {
    report.unanswered++;
    bucket(at).failed++;
    sample('unanswered', { message: String(err?.cause?.code ?? err?.message ?? err) });
    return null;
  }
  report.byStatus[res.status] = (report.byStatus[res.status] ?? 0) + 1;
  let parsed = null;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON: counted below
  }
  const errors = parsed?.errors ?? [];
  const codes = errors.map((e) => e?.extensions?.code);
  for (const code of codes) report.byCode[code ?? 'none'] = (report.byCode[code ?? 'none'] ?? 0) + 1;
  const uncoded = !parsed || codes.some((c) => typeof c !== 'string') || (res.status >= 500 && codes.length === 0);
  if (uncoded) {
    report.uncoded++;
    sample('uncoded', { status: res.status, body: text.slice(0, 300) });
  }
  if (res.status === 503 && !res.headers.get('retry-after')) report.missingRetryAfter++;
  const ok = res.status === 200 && errors.length === 0 && parsed?.data != null;
  if (ok) report.ok++;
  bucket(at)[ok ? 'ok' : 'failed']++;
  if (!ok && !uncoded) sample('error', { status: res.status, codes });
  return { status: res.status, body: parsed, ok };
}

const scenarios = {
  /** Request i asks users i, i+1 and i+2 (ADMIN): concurrent requests share keys, so loads are joined. */
  async overlappingUsers(i) {
    const id = (n) => String(1 + ((i + n) % users));
    await post(
      {
        query: 'query Overlap($a: ID!, $b: ID!, $c: ID!) { a: user(id: $a) { id email } b: user(id: $b) { id email } c: user(id: $c) { id email } }',
        variables: { a: id(0), b: id(1), c: id(2) },
      },
      tokens.admin,
    );
  },
  /** A user's own reads, and an ADMIN's list, in turn: lists, pages, counts and joins. */
  async mixedReads(i) {
    const user = tokens.users[i % tokens.users.length];
    switch (i % 4) {
      case 0:
        return post({ query: 'query Me { me { email paymentCount payments(first: 5) { nodes { id amount status } } } }' }, user.token);
      case 1:
        return post({ query: 'query History { paymentHistory(first: 10) { nodes { id amount user { email } } } }' }, user.token);
      case 2:
        return post({ query: 'query List { users(first: 20) { nodes { id email paymentCount } } }' }, tokens.admin);
      default:
        // Any of the `users` seeded: many distinct entries, as a cache under memory pressure sees.
        return post({ query: 'query One($id: ID!) { user(id: $id) { email payments(first: 3) { nodes { id amount } } } }', variables: { id: String(1 + (i % users)) } }, tokens.admin);
    }
  },
  /**
   * Half the workers write a user's name (ADMIN) and then read it back (ADMIN, through every cache,
   * on `readUrl`: another instance when given): a read answered with anything but the last
   * acknowledged name is stale. The others read lists.
   */
  async readYourWrites(i, worker) {
    if (worker % 2 === 1) return scenarios.mixedReads(i);
    const id = String(2 + worker);
    const name = `w${worker}-${i}`;
    const written = await post({ query: 'mutation Write($id: ID!, $name: String!) { updateUser(id: $id, input: { name: $name }) { id name } }', variables: { id, name } }, tokens.admin);
    if (!written?.ok) return;
    report.writes++;
    report.lastWritten[id] = name;
    const read = await post({ query: 'query Read($id: ID!) { user(id: $id) { name } }', variables: { id } }, tokens.admin, {}, readUrl);
    if (read?.ok && read.body.data.user.name !== name) {
      report.stale++;
      sample('stale', { expected: name, got: read.body.data.user.name });
    }
  },
  /**
   * Each worker creates payments, each under its own idempotency key, retrying a key until the
   * server says what became of it (not PAYMENT_PROVIDER_UNAVAILABLE), then refunds nothing: the test
   * reads the Stripe double for what was created per key.
   */
  async createPayments(_i, worker) {
    const user = tokens.users[worker % tokens.users.length];
    const key = `fault-${worker}-${state[worker].key}`;
    const answer = await post(
      {
        query: 'mutation Pay($input: CreatePaymentInput!) { createPayment(input: $input) { payment { id status } clientSecret } }',
        variables: { input: { amount: 1000 + worker, currency: 'usd', idempotencyKey: key } },
      },
      user.token,
    );
    const payment = answer?.body?.data?.createPayment?.payment;
    state[worker].attempts++;
    if (payment) {
      report.payments.push({ key, userId: user.id, id: payment.id, attempts: state[worker].attempts });
      state[worker].key++;
      state[worker].attempts = 0;
    }
  },
};

const state = Array.from({ length: concurrency }, () => ({ key: 0, attempts: 0 }));
const run = scenarios[scenario];
if (!run) throw new Error(`no scenario ${scenario}`);
let next = 0;
await Promise.all(
  Array.from({ length: concurrency }, async (_, worker) => {
    while (Date.now() - startedAt < durationMs) await run(next++, worker);
  }),
);
process.stdout.write(`${JSON.stringify(report)}\n`);
