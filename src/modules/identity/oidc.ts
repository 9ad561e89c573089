import { errors, jwtVerify } from 'jose';
import type { MikroORM } from '@mikro-orm/postgresql';
import { IdentityRepository } from './identity.repository.js';
import { IdentityProviderUnavailableError, JwksKeys } from './jwks.js';
import { normalizeEmail, Role, User } from '../user/user.entity.js';
import { userService } from '../user/user.service.js';
import { CreateUserInput } from '../user/user.inputs.js';
import { AuditActorType, AuditEntityType, AuditLogEntry } from '../audit/audit.entity.js';
import { userActor } from '../audit/audit.js';
import type { Viewer } from '../auth/auth.js';
import { attributedFork } from '../../core/sql-stats.js';
import { inTransaction } from '../../core/sql.js';
import { isDatabaseUnavailable } from '../../core/db-errors.js';
import { ConflictError, InvalidTokenError, ServiceUnavailableError } from '../../core/errors.js';

export interface OidcSettings {
  issuer: string;
  audience: string;
  jwksUrl?: string;
  /** `link`: a first sign-in links to the live user with the token's verified email, else is refused; `create`: or creates a USER. */
  newUsers: 'link' | 'create';
  clockSkewSeconds: number;
  jwksMinIntervalMs: number;
}

/** Asymmetric algorithms only: a provider's token is never checked with a shared secret. */
const ALGORITHMS = ['RS256', 'ES256', 'PS256', 'EdDSA'];

/**
 * Tokens from an OpenID Connect provider (OIDC_ISSUER): signatures checked against the provider's JWKS,
 * `iss` and `aud` checked, `exp` and `nbf` with a small clock skew. The provider's subject is mapped to a
 * paygraph user through `user_identities`; at a first sign-in the identity is linked to the live user
 * with the token's email if the provider says it is verified, or (newUsers = create) a USER is made.
 * The role is paygraph's, never the token's. The viewer's row is then checked at every request as for
 * any token (src/modules/auth/viewer.ts).
 */
export class OidcSignIn {
  readonly keys: JwksKeys;

  constructor(
    private readonly settings: OidcSettings,
    private readonly orm: MikroORM,
    options: { fetch?: typeof fetch; onError?: (message: string, err: unknown) => void } = {},
  ) {
    this.keys = new JwksKeys({ issuer: settings.issuer, jwksUrl: settings.jwksUrl, refreshMs: 10 * 60_000, minIntervalMs: settings.jwksMinIntervalMs, timeoutMs: 3000, ...options });
  }

  /** The viewer a provider's token signs in as, and when the token expires; UNAUTHENTICATED for a bad one. */
  async verify(token: string): Promise<{ viewer: Viewer; expiresAtMs: number }> {
    let payload;
    try {
      ({ payload } = await jwtVerify(token, this.keys.getKey, {
        issuer: this.settings.issuer,
        audience: this.settings.audience,
        algorithms: ALGORITHMS,
        clockTolerance: this.settings.clockSkewSeconds,
        requiredClaims: ['sub', 'exp'],
      }));
    } catch (err) {
      if (err instanceof IdentityProviderUnavailableError) throw new ServiceUnavailableError(err, 'The identity provider is unreachable; retry shortly');
      const reason = err instanceof errors.JWTExpired ? 'expired' : err instanceof errors.JWTClaimValidationFailed ? `its ${err.claim} is not accepted` : 'its signature or form is not accepted';
      throw new InvalidTokenError(`Invalid token: ${reason}`);
    }
    try {
      const viewer = await this.viewerOf(payload.iss!, payload.sub!, payload as { email?: unknown; email_verified?: unknown; name?: unknown });
      return { viewer, expiresAtMs: payload.exp! * 1000 };
    } catch (err) {
      // The identity could not be read (PostgreSQL away): a 503 to retry, as for any request's viewer.
      throw isDatabaseUnavailable(err) ? new ServiceUnavailableError(err) : err;
    }
  }

  private async viewerOf(issuer: string, subject: string, claims: { email?: unknown; email_verified?: unknown; name?: unknown }): Promise<Viewer> {
    // Statements, log lines and audit entries of a sign-in carry this id.
    const signIn = `sign-in:${subject}`;
    const em = attributedFork(this.orm.em, signIn);
    const known = await new IdentityRepository(em).findUser(issuer, subject);
    if (known) return { id: known.id, role: known.role as Role };
    const email = typeof claims.email === 'string' && claims.email_verified === true ? normalizeEmail(claims.email) : null;
    if (!email) throw new InvalidTokenError('This identity is not linked to a user, and its token carries no verified email to link it by');
    const existing = await em.getRepository(User).findRowByEmail(email);
    let userId: number;
    if (existing) userId = existing.id;
    else if (this.settings.newUsers === 'create') {
      const name = typeof claims.name === 'string' && claims.name.trim() ? claims.name.trim().slice(0, 200) : email;
      const audit = { actorType: AuditActorType.USER, actorId: null, requestId: signIn, clientRequestId: null };
      try {
        userId = (await userService.createUser({ em, audit }, Object.assign(new CreateUserInput(), { email, name }))).id;
      } catch (err) {
        // Two first sign-ins at once: the other made the user; this one links to it.
        const made = err instanceof ConflictError ? await em.getRepository(User).findRowByEmail(email) : null;
        if (!made) throw err;
        userId = made.id;
      }
    } else throw new InvalidTokenError(`No user has the email ${email}: ask an ADMIN to create one`);
    await inTransaction(em, async (tx) => {
      if (await new IdentityRepository(tx).link(issuer, subject, userId)) {
        await tx.getRepository(AuditLogEntry).append(userActor(userId, signIn, null), [
          { entityType: AuditEntityType.USER, entityId: userId, action: 'identity_linked', before: null, after: { issuer, subject } },
        ]);
      }
    });
    // A concurrent first sign-in may have linked it first: the identity's user is whoever it names now.
    const linked = await new IdentityRepository(em).findUser(issuer, subject);
    if (!linked) throw new InvalidTokenError('This identity signs in as no live user');
    return { id: linked.id, role: linked.role as Role };
  }
}
