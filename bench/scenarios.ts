/**
 * The benchmark's scenarios: the GraphQL operation the app gets, and the variables each request
 * uses. The baseline server answers the same operations (by name) with the same JSON.
 */
export interface Scenario {
  name: 'T' | 'Q1' | 'Q1U' | 'Q2' | 'Q3' | 'Q4' | 'Q4D' | 'Q5';
  description: string;
  /** The document, the same for every request, or the i-th request's own (distinct documents). */
  query: string | ((i: number) => string);
  /** Variables of the i-th request (deterministic, so every run asks the same). */
  variables: (i: number) => Record<string, unknown>;
  /** Token of the i-th request: the admin's, or one of many users'. */
  token: 'admin' | 'users';
  /** Distinct variable sets (the warm-up of a cached run visits each once). */
  distinct: number;
}

export const USERS = 1000;
export const PAYMENTS_PER_USER = 20;
/** Q3 cycles through this many users' tokens. */
export const TOKEN_USERS = 100;

export const SCENARIOS: Scenario[] = [
  {
    name: 'T',
    description: '{ __typename }: no data, the fixed cost of an operation (the baseline is bare node:http with the same token check)',
    query: 'query T { __typename }',
    variables: () => ({}),
    token: 'users',
    distinct: 1,
  },
  {
    name: 'Q1',
    description: 'users(first:100) with payments(first:10)',
    query: 'query Q1 { users(first: 100) { nodes { id email payments(first: 10) { nodes { id amount status } } } } }',
    variables: () => ({}),
    token: 'admin',
    distinct: 1,
  },
  {
    name: 'Q1U',
    description: 'Q1 with each payment\'s back-reference (user { email }), the first budget of README',
    query: 'query Q1U { users(first: 100) { nodes { id email payments(first: 10) { nodes { id amount status user { email } } } } } }',
    variables: () => ({}),
    token: 'admin',
    distinct: 1,
  },
  {
    name: 'Q2',
    description: 'user(id) with payments(first:10), ids varying',
    query: 'query Q2($id: ID!) { user(id: $id) { email payments(first: 10) { nodes { amount status } } } }',
    variables: (i) => ({ id: String(1 + (i % USERS)) }),
    token: 'admin',
    distinct: USERS,
  },
  {
    name: 'Q3',
    description: "paymentHistory(first:20) with user, user tokens",
    query: 'query Q3 { paymentHistory(first: 20) { nodes { amount status user { email } } } }',
    variables: () => ({}),
    token: 'users',
    distinct: TOKEN_USERS,
  },
  {
    name: 'Q4',
    description: 'payment(id) with user, ids varying',
    query: 'query Q4($id: ID!) { payment(id: $id) { amount user { email } } }',
    // 2,000 distinct payments, spread over all users.
    variables: (i) => ({ id: String(1 + ((i % 2000) * 10) % (USERS * PAYMENTS_PER_USER)) }),
    token: 'admin',
    distinct: 2000,
  },
  {
    name: 'Q4D',
    description: 'Q4 with the id written into the document: a distinct document per request, as Sandbox users and scripts send',
    query: (i) => `query Q4D { payment(id: "${1 + ((i * 7919) % (USERS * PAYMENTS_PER_USER))}") { amount user { email } } }`,
    // The baseline reads the id from the variables; the app ignores variables its document does not declare.
    variables: (i) => ({ id: String(1 + ((i * 7919) % (USERS * PAYMENTS_PER_USER))) }),
    token: 'admin',
    distinct: USERS * PAYMENTS_PER_USER,
  },
  {
    name: 'Q5',
    description: 'users(first:50) with paymentCount(status:COMPLETED)',
    query: 'query Q5 { users(first: 50) { nodes { paymentCount(status: COMPLETED) } } }',
    variables: () => ({}),
    token: 'admin',
    distinct: 1,
  },
];
