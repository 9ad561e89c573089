import { graphql } from './gql/index.js';

/** The viewer and one page of their payments, newest first; `after` is the previous page's endCursor. */
export const MyPayments = graphql(`
  query MyPayments($first: Int!, $after: String) {
    me {
      id
      email
      payments(first: $first, after: $after) {
        nodes {
          id
          amount
          currency
          status
          createdAt
        }
        pageInfo {
          hasNextPage
          endCursor
        }
      }
    }
  }
`);

/** Every change of the viewer's own payments. */
export const MyPaymentUpdates = graphql(`
  subscription MyPaymentUpdates {
    paymentUpdated {
      id
      status
      amount
      amountRefunded
    }
  }
`);
