import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Role } from '../user/user.entity.js';
import type { TokenVerifier } from '../auth/auth.js';

/** sha256 (hex) of a document's exact text: how GraphQL Code Generator's manifest names it. */
export const documentHash = (text: string): string => createHash('sha256').update(text, 'utf8').digest('hex');

/** The documents a deployment allows, by hash. */
export type TrustedDocuments = ReadonlyMap<string, string>;

/**
 * Reads a persisted-documents manifest as GraphQL Code Generator's client preset writes it
 * (`{ "<sha256>": "<document>" }`). Every entry must be a string whose hash is its key: a manifest that
 * does not say what it means stops start-up, naming the entry.
 */
export async function loadTrustedDocuments(file: string): Promise<TrustedDocuments> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    throw new Error(`GRAPHQL_TRUSTED_DOCUMENTS: cannot read ${file} as JSON (${(err as Error).message})`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new Error(`GRAPHQL_TRUSTED_DOCUMENTS: ${file} must be an object of "<sha256>": "<document>"`);
  }
  const documents = new Map<string, string>();
  for (const [hash, text] of Object.entries(parsed)) {
    if (typeof text !== 'string' || documentHash(text) !== hash) {
      throw new Error(`GRAPHQL_TRUSTED_DOCUMENTS: the entry ${hash} in ${file} is not a document whose sha256 is its key`);
    }
    documents.set(hash, text);
  }
  return documents;
}

/** The document a request names: `documentId`, Apollo's `extensions.persistedQuery.sha256Hash`, or its `query`'s hash. */
export function requestedHash(body: { documentId?: unknown; query?: unknown; extensions?: unknown }): string | null {
  if (typeof body.documentId === 'string') return body.documentId.replace(/^sha256:/, '');
  const extensions = typeof body.extensions === 'string' ? safeJson(body.extensions) : body.extensions;
  const hash = (extensions as { persistedQuery?: { sha256Hash?: unknown } } | undefined)?.persistedQuery?.sha256Hash;
  if (typeof hash === 'string') return hash;
  if (typeof body.query === 'string') return documentHash(body.query);
  return null;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

export const TRUSTED_DOCUMENT_REQUIRED = 'TRUSTED_DOCUMENT_REQUIRED';

/**
 * With a manifest, `/graphql` runs only its documents: a request names one by `documentId`, by
 * `extensions.persistedQuery.sha256Hash` or by sending its exact text, and anything else is refused
 * (400, TRUSTED_DOCUMENT_REQUIRED) before GraphQL runs. A named document's text is put in the request,
 * so clients need not send it. In development, `adminAny` lets an ADMIN's token run any operation
 * (Apollo Sandbox); the config refuses it in production.
 */
export function registerTrustedDocuments(
  fastify: FastifyInstance,
  options: { documents: TrustedDocuments; adminAny: boolean; tokens: TokenVerifier },
): void {
  fastify.addHook('preHandler', async (request, reply) => {
    if (request.routeOptions.url !== '/graphql' || request.method === 'OPTIONS') return;
    const body = (request.method === 'GET' ? request.query : request.body) as Record<string, unknown> | undefined;
    if (!body || typeof body !== 'object' || Array.isArray(body)) return; // batches are refused elsewhere
    const hash = requestedHash(body);
    const text = hash ? options.documents.get(hash) : undefined;
    if (text !== undefined) {
      body.query = text;
      delete body.documentId;
      if (body.extensions && typeof body.extensions === 'object') delete (body.extensions as Record<string, unknown>).persistedQuery;
      return;
    }
    if (options.adminAny && (await isAdmin(request, options.tokens))) return;
    await reply.code(400).send({
      errors: [
        {
          message: 'Only trusted documents run on this server: send the documentId (sha256) of an operation in its manifest',
          extensions: { code: TRUSTED_DOCUMENT_REQUIRED },
        },
      ],
    });
  });
}

async function isAdmin(request: FastifyRequest, tokens: TokenVerifier): Promise<boolean> {
  const header = request.headers.authorization;
  try {
    return (await tokens.viewerFromAuthorization(Array.isArray(header) ? header[0] : header))?.role === Role.ADMIN;
  } catch {
    return false;
  }
}
