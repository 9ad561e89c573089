import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { decodeProtectedHeader, jwtVerify, SignJWT } from 'jose';
import { Role } from '../user/user.entity.js';
import { Lru } from '../../core/lru.js';
import { ForbiddenError, InvalidTokenError, UnauthenticatedError } from '../../core/errors.js';

/** Who is asking, as the token says (an identity provider's token: as its identity's user is). */
export interface Viewer {
  id: number;
  role: Role;
}

const ALGORITHM = 'HS256';

export function secretKey(secret: string): Uint8Array {
  return new TextEncoder().encode(secret);
}

export async function signToken(key: Uint8Array, viewer: Viewer, ttlSeconds: number): Promise<string> {
  return new SignJWT({ role: viewer.role })
    .setProtectedHeader({ alg: ALGORITHM })
    .setSubject(String(viewer.id))
    .setIssuedAt()
    .setExpirationTime(`${ttlSeconds}s`)
    .sign(key);
}

/**
 * Reads `Authorization: Bearer <jwt>`. No header: anonymous (null). A header that is present but not
 * a valid, unexpired HS256 token with `sub`, `role` and `exp`: UNAUTHENTICATED for the whole request.
 *
 * Clients send the same token with every request until it expires, so the outcome of a successful
 * verification is remembered per exact token string (bounded, least recently used first out) until
 * the token's `exp`: a repeat costs a map lookup instead of an HMAC through WebCrypto. Failures are
 * never remembered, and a remembered token stops working at its `exp` as it would unremembered.
 */
export class TokenVerifier {
  private readonly verified: Lru<string, { viewer: Viewer; expiresAtMs: number }>;

  constructor(
    private readonly key: Uint8Array,
    maxRemembered = 10_000,
    private readonly now: () => number = Date.now,
    /** An identity provider's tokens (OIDC_ISSUER; src/modules/identity), beside our own HS256 ones. */
    private readonly provider: { verify(token: string): Promise<{ viewer: Viewer; expiresAtMs: number }> } | null = null,
  ) {
    this.verified = new Lru(maxRemembered);
  }

  async viewerFromAuthorization(header: string | undefined): Promise<Viewer | null> {
    return (await this.verifyAuthorization(header))?.viewer ?? null;
  }

  /** The token's claims and when it expires (epoch ms); null without a header; throws for a bad token. */
  async verifyAuthorization(header: string | undefined): Promise<{ viewer: Viewer; expiresAtMs: number } | null> {
    if (header === undefined || header === '') return null;
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    if (!match) throw new InvalidTokenError('Authorization header must be "Bearer <token>"');
    const token = match[1]!;
    const known = this.verified.get(token);
    if (known) {
      if (this.now() < known.expiresAtMs) return known;
      this.verified.delete(token);
    }
    const verified = await this.verify(token);
    this.verified.set(token, verified);
    return verified;
  }

  /** How many verified tokens are remembered (tests). */
  get size(): number {
    return this.verified.size;
  }

  /** Whether this token's verification is remembered (tests). */
  remembers(token: string): boolean {
    return this.verified.has(token);
  }

  private async verify(token: string): Promise<{ viewer: Viewer; expiresAtMs: number }> {
    if (this.provider && !isOwnToken(token)) return this.provider.verify(token);
    try {
      const { payload } = await jwtVerify(token, this.key, { algorithms: [ALGORITHM], requiredClaims: ['sub', 'exp'], currentDate: new Date(this.now()) });
      const id = Number(payload.sub);
      const role = payload.role;
      if (!Number.isInteger(id) || id <= 0 || (role !== Role.USER && role !== Role.ADMIN)) {
        throw new Error('claims');
      }
      return { viewer: { id, role }, expiresAtMs: payload.exp! * 1000 };
    } catch {
      throw new InvalidTokenError('Invalid or expired token');
    }
  }
}

/** Signed by us (HS256 with JWT_SECRET), rather than by an identity provider. */
function isOwnToken(token: string): boolean {
  try {
    return decodeProtectedHeader(token).alg === ALGORITHM;
  } catch {
    return true; // not a JWT at all: refused by the HS256 path with the usual message
  }
}

export function requireViewer(viewer: Viewer | null): Viewer {
  if (!viewer) throw new UnauthenticatedError();
  return viewer;
}

export function requireAdmin(viewer: Viewer | null): Viewer {
  const v = requireViewer(viewer);
  if (v.role !== Role.ADMIN) throw new ForbiddenError();
  return v;
}

/** A USER sees only themself; an ADMIN sees everyone. */
export function canSeeUser(viewer: Viewer, userId: number): boolean {
  return viewer.role === Role.ADMIN || viewer.id === userId;
}

/**
 * The development signing secret: generated once and kept in `<dataDir>/jwt-secret`, so tokens
 * printed by `npm start` or `npm run token` keep working across restarts. Production requires
 * JWT_SECRET (config refuses to start without it).
 */
export async function developmentJwtSecret(dataDir: string): Promise<string> {
  const file = path.join(dataDir, 'jwt-secret');
  try {
    const existing = (await readFile(file, 'utf8')).trim();
    if (existing.length >= 32) return existing;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const secret = randomBytes(32).toString('base64url');
  await mkdir(dataDir, { recursive: true });
  await writeFile(file, `${secret}\n`, { mode: 0o600 });
  return secret;
}
