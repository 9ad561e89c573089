/* eslint-disable */
import type { TypedDocumentNode as DocumentNode } from '@graphql-typed-document-node/core';
export type Maybe<T> = T | null;
export type InputMaybe<T> = Maybe<T>;
export type Exact<T extends { [key: string]: unknown }> = { [K in keyof T]: T[K] };
export type MakeOptional<T, K extends keyof T> = Omit<T, K> & { [SubKey in K]?: Maybe<T[SubKey]> };
export type MakeMaybe<T, K extends keyof T> = Omit<T, K> & { [SubKey in K]: Maybe<T[SubKey]> };
export type MakeEmpty<T extends { [key: string]: unknown }, K extends keyof T> = { [_ in K]?: never };
export type Incremental<T> = T | { [P in keyof T]?: P extends ' $fragmentName' | '__typename' ? T[P] : never };
/** All built-in and custom scalars, mapped to their actual values */
export type Scalars = {
  ID: { input: string; output: string; }
  String: { input: string; output: string; }
  Boolean: { input: boolean; output: boolean; }
  Int: { input: number; output: number; }
  Float: { input: number; output: number; }
  /** A date-time string at UTC, such as 2007-12-03T10:15:30Z, compliant with the `date-time` format outlined in section 5.6 of the RFC 3339 profile of the ISO 8601 standard for representation of dates and times using the Gregorian calendar. */
  DateTime: { input: string; output: string; }
  /** The `JSONObject` scalar type represents JSON objects as specified by [ECMA-404](http://www.ecma-international.org/publications/files/ECMA-ST/ECMA-404.pdf). */
  JSONObject: { input: Record<string, unknown>; output: Record<string, unknown>; }
  /** The `SafeInt` scalar type represents non-fractional signed whole numeric values that are considered safe as defined by the ECMAScript specification. */
  SafeInt: { input: any; output: any; }
};

export type AuditActorType =
  /** The reconciliation job, which asked Stripe for the state of a payment. */
  | 'RECONCILER'
  /** A Stripe webhook event (its id is the entry's requestId). */
  | 'STRIPE'
  /** A signed-in user (actorId). */
  | 'USER';

export type AuditEntityType =
  | 'PAYMENT'
  | 'USER';

export type AuditEntry = {
  __typename?: 'AuditEntry';
  /** create, update, delete, cancel_requested, refund_requested, status_changed, refund_recorded... */
  action: Scalars['String']['output'];
  /** The user who made the change (USER actors). */
  actorId?: Maybe<Scalars['ID']['output']>;
  actorType: AuditActorType;
  /** The changed fields as they became. */
  after?: Maybe<Scalars['JSONObject']['output']>;
  /** The changed fields as they were (null for a creation). */
  before?: Maybe<Scalars['JSONObject']['output']>;
  /** The x-request-id the client sent with the request, if any: recorded beside requestId, never instead of it. */
  clientRequestId?: Maybe<Scalars['String']['output']>;
  createdAt: Scalars['DateTime']['output'];
  entityId: Scalars['ID']['output'];
  entityType: AuditEntityType;
  id: Scalars['ID']['output'];
  /** The request's own id (the x-request-id the server answered with), the Stripe event id, or the reconciliation run. */
  requestId?: Maybe<Scalars['String']['output']>;
};

export type AuditEntryConnection = {
  __typename?: 'AuditEntryConnection';
  edges: Array<AuditEntryEdge>;
  nodes: Array<AuditEntry>;
  pageInfo: PageInfo;
  /** Counted only when selected: one extra statement. */
  totalCount: Scalars['Int']['output'];
};

export type AuditEntryEdge = {
  __typename?: 'AuditEntryEdge';
  cursor: Scalars['String']['output'];
  node: AuditEntry;
};

export type CreatePaymentInput = {
  /** Minor units (cents for usd), 1 to 99,999,999. */
  amount: Scalars['Int']['input'];
  /** ISO 4217 code, any case: usd, eur, gbp, cad, aud, nzd, chf, sek, nok, dkk, pln, czk, jpy, sgd, hkd, mxn, brl. */
  currency: Scalars['String']['input'];
  description?: InputMaybe<Scalars['String']['input']>;
  /** Your key for this payment (8-255 characters): the same key again returns the same payment. */
  idempotencyKey: Scalars['String']['input'];
};

export type CreatePaymentPayload = {
  __typename?: 'CreatePaymentPayload';
  /** The PaymentIntent's client secret for Stripe.js; null once the payment is no longer pending. */
  clientSecret?: Maybe<Scalars['String']['output']>;
  payment: Payment;
};

export type CreateUserInput = {
  email: Scalars['String']['input'];
  isActive?: InputMaybe<Scalars['Boolean']['input']>;
  name: Scalars['String']['input'];
  role?: InputMaybe<Role>;
};

export type Mutation = {
  __typename?: 'Mutation';
  /** Owner or ADMIN; PENDING or REQUIRES_ACTION only. The final CANCELED status arrives with Stripe's webhook. */
  cancelPayment: Payment;
  /** Starts a payment for the viewer. The same idempotencyKey again (also concurrently) returns the same payment and never creates a second PaymentIntent. */
  createPayment: CreatePaymentPayload;
  /** ADMIN only. */
  createUser: User;
  /** ADMIN only. A soft delete: the user is gone from every read and their tokens stop working; their payments stay. */
  deleteUser: Scalars['Boolean']['output'];
  /** ADMIN only; COMPLETED only. `amount` (minor units) defaults to all that is left; the webhook records the refund. */
  refundPayment: Payment;
  /** A USER may change their own email and name. */
  updateUser: User;
};


export type MutationCancelPaymentArgs = {
  id: Scalars['ID']['input'];
};


export type MutationCreatePaymentArgs = {
  input: CreatePaymentInput;
};


export type MutationCreateUserArgs = {
  input: CreateUserInput;
};


export type MutationDeleteUserArgs = {
  id: Scalars['ID']['input'];
};


export type MutationRefundPaymentArgs = {
  amount?: InputMaybe<Scalars['Int']['input']>;
  id: Scalars['ID']['input'];
  idempotencyKey?: InputMaybe<Scalars['String']['input']>;
};


export type MutationUpdateUserArgs = {
  id: Scalars['ID']['input'];
  input: UpdateUserInput;
};

export type PageInfo = {
  __typename?: 'PageInfo';
  /** Pass as `after` to get the next page. */
  endCursor?: Maybe<Scalars['String']['output']>;
  hasNextPage: Scalars['Boolean']['output'];
};

export type Payment = {
  __typename?: 'Payment';
  /** Minor units of `currency` (cents for usd). */
  amount: Scalars['Int']['output'];
  /** Minor units refunded so far; a partial refund leaves the status COMPLETED. */
  amountRefunded: Scalars['Int']['output'];
  createdAt: Scalars['DateTime']['output'];
  /** ISO 4217, lower-case. */
  currency: Scalars['String']['output'];
  description?: Maybe<Scalars['String']['output']>;
  /** Why the payment failed, as the payment provider said. */
  failureReason?: Maybe<Scalars['String']['output']>;
  id: Scalars['ID']['output'];
  status: PaymentStatus;
  stripePaymentId?: Maybe<Scalars['String']['output']>;
  user: User;
};

export type PaymentConnection = {
  __typename?: 'PaymentConnection';
  edges: Array<PaymentEdge>;
  nodes: Array<Payment>;
  pageInfo: PageInfo;
  /** Counted only when selected: one extra statement. */
  totalCount: Scalars['Int']['output'];
};

export type PaymentEdge = {
  __typename?: 'PaymentEdge';
  cursor: Scalars['String']['output'];
  node: Payment;
};

/** Count and total of a user's payments in one status and currency. */
export type PaymentStats = {
  __typename?: 'PaymentStats';
  count: Scalars['Int']['output'];
  currency: Scalars['String']['output'];
  status: PaymentStatus;
  /** Minor units of `currency`. */
  totalAmount: Scalars['SafeInt']['output'];
};

export type PaymentStatus =
  /** Canceled before it was paid. Final. */
  | 'CANCELED'
  /** Paid. Partial refunds keep this status (see amountRefunded). */
  | 'COMPLETED'
  /** The payment attempt failed (failureReason says why); the customer may retry. */
  | 'FAILED'
  /** Created; waiting for the customer to pay. */
  | 'PENDING'
  /** Waiting for the bank: the charge is being processed. */
  | 'PROCESSING'
  /** Fully refunded. Final. */
  | 'REFUNDED'
  /** Waiting for the customer: an authentication (3-D Secure) or redirect. */
  | 'REQUIRES_ACTION';

export type Query = {
  __typename?: 'Query';
  /** ADMIN only. The changes of one user or payment, newest first. */
  auditLog: AuditEntryConnection;
  /** The user the bearer token belongs to. */
  me?: Maybe<User>;
  payment?: Maybe<Payment>;
  paymentByStripeId?: Maybe<Payment>;
  /** The viewer's own payments, newest first. */
  paymentHistory: PaymentConnection;
  /** ADMIN only. Newest first. */
  payments: PaymentConnection;
  /** A USER may ask only for themself. */
  user?: Maybe<User>;
  userByEmail?: Maybe<User>;
  /** ADMIN only. Ordered by id. */
  users: UserConnection;
};


export type QueryAuditLogArgs = {
  after?: InputMaybe<Scalars['String']['input']>;
  entityId: Scalars['ID']['input'];
  entityType: AuditEntityType;
  first?: InputMaybe<Scalars['Int']['input']>;
};


export type QueryPaymentArgs = {
  id: Scalars['ID']['input'];
};


export type QueryPaymentByStripeIdArgs = {
  stripePaymentId: Scalars['String']['input'];
};


export type QueryPaymentHistoryArgs = {
  after?: InputMaybe<Scalars['String']['input']>;
  first?: InputMaybe<Scalars['Int']['input']>;
  status?: InputMaybe<PaymentStatus>;
};


export type QueryPaymentsArgs = {
  after?: InputMaybe<Scalars['String']['input']>;
  first?: InputMaybe<Scalars['Int']['input']>;
  status?: InputMaybe<PaymentStatus>;
  userId?: InputMaybe<Scalars['ID']['input']>;
};


export type QueryUserArgs = {
  id: Scalars['ID']['input'];
};


export type QueryUserByEmailArgs = {
  email: Scalars['String']['input'];
};


export type QueryUsersArgs = {
  after?: InputMaybe<Scalars['String']['input']>;
  filter?: InputMaybe<UserFilter>;
  first?: InputMaybe<Scalars['Int']['input']>;
};

export type Role =
  | 'ADMIN'
  | 'USER';

export type Subscription = {
  __typename?: 'Subscription';
  /** Every change of a payment, as it is after the change. With `id`: that payment (its owner or an ADMIN; anyone else gets NOT_FOUND, as with `payment(id)`). Without: the viewer's own payments; for an ADMIN, all payments. Over graphql-ws on /graphql. */
  paymentUpdated: Payment;
};


export type SubscriptionPaymentUpdatedArgs = {
  id?: InputMaybe<Scalars['ID']['input']>;
};

export type UpdateUserInput = {
  email?: InputMaybe<Scalars['String']['input']>;
  /** ADMIN only. */
  isActive?: InputMaybe<Scalars['Boolean']['input']>;
  name?: InputMaybe<Scalars['String']['input']>;
  /** ADMIN only. */
  role?: InputMaybe<Role>;
};

export type User = {
  __typename?: 'User';
  createdAt: Scalars['DateTime']['output'];
  /** When the user was deleted (ADMINs see deleted users through their payments and the `deleted` filter). */
  deletedAt?: Maybe<Scalars['DateTime']['output']>;
  email: Scalars['String']['output'];
  id: Scalars['ID']['output'];
  isActive: Scalars['Boolean']['output'];
  name: Scalars['String']['output'];
  paymentCount: Scalars['Int']['output'];
  /** Per status and currency; served from the query cache when warm. */
  paymentStats: Array<PaymentStats>;
  /** Newest first. */
  payments: PaymentConnection;
  role: Role;
};


export type UserPaymentCountArgs = {
  status?: InputMaybe<PaymentStatus>;
};


export type UserPaymentsArgs = {
  after?: InputMaybe<Scalars['String']['input']>;
  first?: InputMaybe<Scalars['Int']['input']>;
  status?: InputMaybe<PaymentStatus>;
};

export type UserConnection = {
  __typename?: 'UserConnection';
  edges: Array<UserEdge>;
  nodes: Array<User>;
  pageInfo: PageInfo;
  /** Counted only when selected: one extra statement. */
  totalCount: Scalars['Int']['output'];
};

export type UserEdge = {
  __typename?: 'UserEdge';
  cursor: Scalars['String']['output'];
  node: User;
};

export type UserFilter = {
  /** true: deleted users only. Otherwise deleted users are left out. */
  deleted?: InputMaybe<Scalars['Boolean']['input']>;
  /** Case-insensitive substring of the email. */
  emailContains?: InputMaybe<Scalars['String']['input']>;
  isActive?: InputMaybe<Scalars['Boolean']['input']>;
  role?: InputMaybe<Role>;
};

export type MyPaymentsQueryVariables = Exact<{
  first: Scalars['Int']['input'];
  after?: InputMaybe<Scalars['String']['input']>;
}>;


export type MyPaymentsQuery = { __typename?: 'Query', me?: { __typename?: 'User', id: string, email: string, payments: { __typename?: 'PaymentConnection', nodes: Array<{ __typename?: 'Payment', id: string, amount: number, currency: string, status: PaymentStatus, createdAt: string }>, pageInfo: { __typename?: 'PageInfo', hasNextPage: boolean, endCursor?: string | null } } } | null };

export type MyPaymentUpdatesSubscriptionVariables = Exact<{ [key: string]: never; }>;


export type MyPaymentUpdatesSubscription = { __typename?: 'Subscription', paymentUpdated: { __typename?: 'Payment', id: string, status: PaymentStatus, amount: number, amountRefunded: number } };


export const MyPaymentsDocument = {"__meta__":{"hash":"353188fd617d7c9054b9f7f71fb7eef772513b9f6a38ba6ae35a085db805b2aa"},"kind":"Document","definitions":[{"kind":"OperationDefinition","operation":"query","name":{"kind":"Name","value":"MyPayments"},"variableDefinitions":[{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"first"}},"type":{"kind":"NonNullType","type":{"kind":"NamedType","name":{"kind":"Name","value":"Int"}}}},{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"after"}},"type":{"kind":"NamedType","name":{"kind":"Name","value":"String"}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"me"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"id"}},{"kind":"Field","name":{"kind":"Name","value":"email"}},{"kind":"Field","name":{"kind":"Name","value":"payments"},"arguments":[{"kind":"Argument","name":{"kind":"Name","value":"first"},"value":{"kind":"Variable","name":{"kind":"Name","value":"first"}}},{"kind":"Argument","name":{"kind":"Name","value":"after"},"value":{"kind":"Variable","name":{"kind":"Name","value":"after"}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"nodes"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"id"}},{"kind":"Field","name":{"kind":"Name","value":"amount"}},{"kind":"Field","name":{"kind":"Name","value":"currency"}},{"kind":"Field","name":{"kind":"Name","value":"status"}},{"kind":"Field","name":{"kind":"Name","value":"createdAt"}}]}},{"kind":"Field","name":{"kind":"Name","value":"pageInfo"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"hasNextPage"}},{"kind":"Field","name":{"kind":"Name","value":"endCursor"}}]}}]}}]}}]}}]} as unknown as DocumentNode<MyPaymentsQuery, MyPaymentsQueryVariables>;
export const MyPaymentUpdatesDocument = {"__meta__":{"hash":"64020f81121b67ab55016514b34cdee979dfcfb2f25e365ee36f2e8dcba6c282"},"kind":"Document","definitions":[{"kind":"OperationDefinition","operation":"subscription","name":{"kind":"Name","value":"MyPaymentUpdates"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"paymentUpdated"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"id"}},{"kind":"Field","name":{"kind":"Name","value":"status"}},{"kind":"Field","name":{"kind":"Name","value":"amount"}},{"kind":"Field","name":{"kind":"Name","value":"amountRefunded"}}]}}]}}]} as unknown as DocumentNode<MyPaymentUpdatesSubscription, MyPaymentUpdatesSubscriptionVariables>;