import { createLocalJWKSet, errors, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';

export interface JwksOptions {
  /** The provider's issuer: its discovery document (`<issuer>/.well-known/openid-configuration`) names the JWKS. */
  issuer: string;
  /** The JWKS itself, when set (no discovery). */
  jwksUrl?: string;
  /** Keys are fetched again this often while they are used (a provider adds and retires keys). */
  refreshMs: number;
  /** An unknown `kid` makes a fetch at most this often (a stream of forged kids must not hammer the provider). */
  minIntervalMs: number;
  /** Bound on each fetch. */
  timeoutMs: number;
  fetch?: typeof fetch;
  now?: () => number;
  onError?: (message: string, err: unknown) => void;
}

/** How often a server that has no key yet asks a provider that does not answer. */
const NO_KEYS_RETRY_MS = 1000;

/** The provider could not be asked for its keys, and none are known: the request is retried later, not refused. */
export class IdentityProviderUnavailableError extends Error {
  override name = 'IdentityProviderUnavailableError';
}

/**
 * The provider's signing keys, for jose's `jwtVerify`. Fetched when first needed (a server starts while
 * the provider is unreachable), kept and fetched again every `refreshMs` while in use, and at once when
 * a token names a `kid` not among them (key rotation), at most every `minIntervalMs`. While the provider
 * does not answer, the keys fetched last keep working (a due fetch runs in the background, never in a
 * request's way); only without any is a token unverifiable (503), and it is asked at most once a second.
 */
export class JwksKeys {
  private keys: JWTVerifyGetKey | null = null;
  private fetchedAt = 0;
  private attemptedAt = -Infinity;
  private jwksUrl: string | undefined;
  private inflight: Promise<void> | null = null;

  constructor(private readonly options: JwksOptions) {
    this.jwksUrl = options.jwksUrl;
  }

  private get now(): number {
    return (this.options.now ?? Date.now)();
  }

  /** jose's key resolver: the key for this token's header. */
  readonly getKey: JWTVerifyGetKey = async (header, token) => {
    const now = this.now;
    if (!this.keys) {
      // None yet: ask (at most every NO_KEYS_RETRY_MS while the provider does not answer; meanwhile 503s).
      if (now - this.attemptedAt < Math.min(this.options.minIntervalMs, NO_KEYS_RETRY_MS)) {
        throw new IdentityProviderUnavailableError('the identity provider has not answered yet');
      }
      await this.refresh();
    } else if (now - this.fetchedAt > this.options.refreshMs && now - this.attemptedAt >= this.options.minIntervalMs) {
      // Due again: fetched in the background, and this token checked with the keys there are (a provider
      // that does not answer must not slow every request down by its timeout).
      this.refresh().catch(() => undefined);
    }
    try {
      return await this.keys!(header, token);
    } catch (err) {
      if (!(err instanceof errors.JWKSNoMatchingKey) || now - this.attemptedAt < this.options.minIntervalMs) throw err;
      // A key the provider may have added since: ask again, once.
      await this.refresh().catch(() => undefined);
      return this.keys!(header, token);
    }
  };

  /** One fetch at a time; a failure keeps the keys there are and throws only when there are none. */
  private refresh(): Promise<void> {
    this.inflight ??= this.fetchKeys().finally(() => (this.inflight = null));
    return this.inflight;
  }

  private async fetchKeys(): Promise<void> {
    this.attemptedAt = this.now;
    try {
      this.jwksUrl ??= await this.discover();
      const jwks = (await this.getJson(this.jwksUrl)) as JSONWebKeySet;
      if (!Array.isArray(jwks?.keys)) throw new Error(`${this.jwksUrl} holds no "keys"`);
      this.keys = createLocalJWKSet(jwks);
      this.fetchedAt = this.now;
    } catch (err) {
      this.options.onError?.('identity provider keys could not be fetched; the keys fetched before stay in use', err);
      if (!this.keys) throw new IdentityProviderUnavailableError(`the identity provider's keys could not be fetched: ${(err as Error).message}`);
    }
  }

  private async discover(): Promise<string> {
    const document = (await this.getJson(`${this.options.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`)) as { jwks_uri?: unknown };
    if (typeof document?.jwks_uri !== 'string') throw new Error('the discovery document names no jwks_uri');
    return document.jwks_uri;
  }

  private async getJson(url: string): Promise<unknown> {
    const res = await (this.options.fetch ?? fetch)(url, { signal: AbortSignal.timeout(this.options.timeoutMs), headers: { accept: 'application/json' } });
    if (!res.ok) throw new Error(`${url} answered ${res.status}`);
    return res.json();
  }
}
