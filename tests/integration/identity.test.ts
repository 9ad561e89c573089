import { createServer, type Server } from 'node:http';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportJWK, generateKeyPair, SignJWT, UnsecuredJWT, type CryptoKey, type JWK } from 'jose';
import { createTestApp, type TestApp } from '../helpers/test-app.js';
import { loadConfig } from '../../src/config.js';

/**
 * Tokens from an OpenID Connect provider (OIDC_ISSUER), against a provider served in this test over
 * HTTP: its discovery document and its JWKS, whose keys the test rotates and whose endpoint it takes
 * down. Each refusal is checked against the same token with the one claim put right passing.
 */
class Provider {
  private server!: Server;
  issuer = '';
  keys: { kid: string; privateKey: CryptoKey; jwk: JWK; alg: string }[] = [];
  served: string[] = [];
  down = false;
  jwksFetches = 0;

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      if (this.down) return void res.writeHead(503).end();
      if (req.url === '/.well-known/openid-configuration') {
        return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ issuer: this.issuer, jwks_uri: `${this.issuer}/jwks` }));
      }
      if (req.url === '/jwks') {
        this.jwksFetches++;
        const keys = this.keys.filter((k) => this.served.includes(k.kid)).map((k) => ({ ...k.jwk, kid: k.kid, alg: k.alg, use: 'sig' }));
        return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys }));
      }
      res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.issuer = `http://127.0.0.1:${(this.server.address() as { port: number }).port}`;
  }

  async addKey(kid: string, alg: 'RS256' | 'ES256', serve = true): Promise<void> {
    const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
    this.keys.push({ kid, privateKey, jwk: await exportJWK(publicKey), alg });
    if (serve) this.served.push(kid);
  }

  /** A token as the provider issues it; `claims` and `options` change what a test needs changed. */
  token(subject: string, claims: Record<string, unknown> = {}, options: { kid?: string; issuer?: string; audience?: string; expiresIn?: number } = {}): Promise<string> {
    const key = this.keys.find((k) => k.kid === (options.kid ?? this.served.at(-1)))!;
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT(claims)
      .setProtectedHeader({ alg: key.alg, kid: key.kid })
      .setIssuer(options.issuer ?? this.issuer)
      .setAudience(options.audience ?? 'paygraph-api')
      .setSubject(subject)
      .setIssuedAt(now - 5)
      .setExpirationTime(now + (options.expiresIn ?? 600))
      .sign(key.privateKey);
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

const ME = '{ me { id email role } }';

describe('tokens from an OpenID Connect provider', () => {
  const provider = new Provider();
  let t: TestApp;
  let created: TestApp;

  const ask = async (app: TestApp, token: string, query = ME) => {
    const r = await app.gql(query, { token });
    return { status: r.status, data: r.body.data as any, code: r.body.errors?.[0]?.extensions?.code, message: r.body.errors?.[0]?.message };
  };

  beforeAll(async () => {
    await provider.start();
    // The provider is down while the server starts: it starts anyway and fetches the keys when first needed.
    provider.down = true;
    t = await createTestApp({ seed: { users: 4, paymentsPerUser: 0 }, env: { OIDC_ISSUER: provider.issuer, OIDC_AUDIENCE: 'paygraph-api', OIDC_JWKS_MIN_INTERVAL_MS: '1000' } });
    created = await createTestApp({ seed: { users: 2, paymentsPerUser: 0 }, env: { OIDC_ISSUER: provider.issuer, OIDC_AUDIENCE: 'paygraph-api', OIDC_NEW_USERS: 'create', DB_STATEMENT_TIMEOUT_MS: '500' } });
    await provider.addKey('rsa-1', 'RS256');
  });
  afterAll(async () => {
    await t?.close();
    await created?.close();
    await provider.close();
  });

  it('with the provider down and no key fetched yet: 503 SERVICE_UNAVAILABLE (retry), not a refusal, asking it at most once a second; once it answers, the token is accepted', async () => {
    const token = await provider.token('sub-user2', { email: 'User2@paygraph.dev', email_verified: true });
    const r = await ask(t, token);
    expect(r.status).toBe(503);
    expect(r.code).toBe('SERVICE_UNAVAILABLE');
    expect(r.message).toMatch(/identity provider is unreachable/);
    // Asked again at most once a second while it has no key: a second request at once is still a 503.
    provider.down = false;
    expect((await ask(t, token)).code).toBe('SERVICE_UNAVAILABLE');
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const ok = await ask(t, token);
    expect(ok.code).toBeUndefined();
    expect(ok.data.me).toEqual({ id: '2', email: 'user2@paygraph.dev', role: 'USER' });
  });

  it('links a first sign-in to the user with the verified email, once, audited; later tokens of that subject need no email', async () => {
    const identities = await t.sql<{ user_id: number }>('select user_id from user_identities where subject = ?', ['sub-user2']);
    expect(identities).toEqual([{ user_id: 2 }]);
    expect(await t.sql('select action, after from audit_log where entity_type = ? and entity_id = 2 and action = ?', ['USER', 'identity_linked'])).toEqual([
      { action: 'identity_linked', after: { issuer: provider.issuer, subject: 'sub-user2' } },
    ]);
    const again = await ask(t, await provider.token('sub-user2'));
    expect(again.data.me.id).toBe('2');
  });

  it('keeps the role paygraph gives: a role claim in the token changes nothing', async () => {
    const token = await provider.token('sub-user3', { email: 'user3@paygraph.dev', email_verified: true, role: 'ADMIN', roles: ['ADMIN'] });
    expect((await ask(t, token)).data.me).toEqual({ id: '3', email: 'user3@paygraph.dev', role: 'USER' });
    expect((await ask(t, token, '{ users(first: 1) { totalCount } }')).code).toBe('FORBIDDEN');
  });

  it('refuses a first sign-in whose email is not verified, or whose email no user has (link), and links nothing', async () => {
    const unverified = await ask(t, await provider.token('sub-x', { email: 'user4@paygraph.dev', email_verified: false }));
    expect(unverified).toMatchObject({ status: 401, code: 'UNAUTHENTICATED', message: expect.stringMatching(/no verified email/) });
    const unknown = await ask(t, await provider.token('sub-y', { email: 'nobody@example.com', email_verified: true }));
    expect(unknown).toMatchObject({ status: 401, code: 'UNAUTHENTICATED', message: expect.stringMatching(/No user has the email nobody@example.com/) });
    expect(await t.sql('select subject from user_identities where subject in (?, ?)', ['sub-x', 'sub-y'])).toEqual([]);
    // Just right: the same user with the email verified signs in.
    expect((await ask(t, await provider.token('sub-x', { email: 'user4@paygraph.dev', email_verified: true }))).data.me.id).toBe('4');
  });

  it('creates a USER at a first sign-in with OIDC_NEW_USERS=create, audited, and the same one at the next', async () => {
    const token = await provider.token('sub-new', { email: 'New.Person@example.com', email_verified: true, name: 'New Person' });
    const first = await ask(created, token);
    expect(first.data.me).toMatchObject({ email: 'new.person@example.com', role: 'USER' });
    const second = await ask(created, await provider.token('sub-new'));
    expect(second.data.me.id).toBe(first.data.me.id);
    expect(await created.sql('select count(*)::int as n from users where email = ?', ['new.person@example.com'])).toEqual([{ n: 1 }]);
    expect((await created.sql<{ action: string }>('select action from audit_log where entity_type = ? and entity_id = ? order by id', ['USER', Number(first.data.me.id)])).map((r) => r.action)).toEqual([
      'create',
      'identity_linked',
    ]);
  });

  it('a sign-in whose identity cannot be read (PostgreSQL stalled past the statement timeout) is a 503 to retry, then signs in', async () => {
    const token = await provider.token('sub-stalled', { email: 'stalled@example.com', email_verified: true });
    const lock = new pg.Client({ connectionString: created.db.url });
    await lock.connect();
    try {
      await lock.query('begin');
      await lock.query('lock table user_identities in access exclusive mode');
      const r = await ask(created, token);
      expect(r).toMatchObject({ status: 503, code: 'SERVICE_UNAVAILABLE' });
      await lock.query('commit');
    } finally {
      await lock.end();
    }
    expect((await ask(created, token)).data.me.email).toBe('stalled@example.com');
  });

  it('refuses a wrong issuer, a wrong audience, an expired token (past the clock skew), and an unsigned one', async () => {
    const good = await provider.token('sub-user2');
    expect((await ask(t, good)).data.me.id).toBe('2');
    expect(await ask(t, await provider.token('sub-user2', {}, { issuer: 'https://other.example.com' }))).toMatchObject({ status: 401, message: expect.stringMatching(/iss/) });
    expect(await ask(t, await provider.token('sub-user2', {}, { audience: 'another-api' }))).toMatchObject({ status: 401, message: expect.stringMatching(/aud/) });
    expect(await ask(t, await provider.token('sub-user2', {}, { expiresIn: -120 }))).toMatchObject({ status: 401, message: expect.stringMatching(/expired/) });
    const unsigned = new UnsecuredJWT({}).setIssuer(provider.issuer).setAudience('paygraph-api').setSubject('sub-user2').setExpirationTime('10m').encode();
    expect(await ask(t, unsigned)).toMatchObject({ status: 401, code: 'UNAUTHENTICATED' });
    // Within the skew (60 s): still accepted, a provider's clock may be a little ahead of ours.
    expect((await ask(t, await provider.token('sub-user2', {}, { expiresIn: -20 }))).data.me.id).toBe('2');
  });

  it('rotation: a token with a new kid makes one fetch of the JWKS and is accepted; unknown kids do not fetch again within OIDC_JWKS_MIN_INTERVAL_MS', async () => {
    await provider.addKey('ec-2', 'ES256');
    await new Promise((resolve) => setTimeout(resolve, 1100)); // past the interval since the last fetch
    const before = provider.jwksFetches;
    const rotated = await provider.token('sub-user2', {}, { kid: 'ec-2' });
    expect((await ask(t, rotated)).data.me.id).toBe('2');
    expect(provider.jwksFetches).toBe(before + 1);
    // A key the provider does not serve: refused, and the fetch just made is not repeated for it.
    await provider.addKey('rogue', 'RS256', false);
    const rogue = await ask(t, await provider.token('sub-user2', {}, { kid: 'rogue' }));
    expect(rogue).toMatchObject({ status: 401, code: 'UNAUTHENTICATED' });
    expect(provider.jwksFetches).toBe(before + 1);
  });

  it('keeps verifying with the keys it has while the JWKS endpoint is down', async () => {
    provider.down = true;
    try {
      const token = await provider.token('sub-user3', {}, { kid: 'rsa-1' });
      expect((await ask(t, token)).data.me.id).toBe('3');
    } finally {
      provider.down = false;
    }
  });

  it('still accepts our own HS256 tokens beside the provider\'s', async () => {
    expect((await ask(t, await t.userToken(4))).data.me.id).toBe('4');
  });
});

describe('OIDC settings', () => {
  const base = { NODE_ENV: 'test', DATABASE_URL: 'postgresql://localhost/x', JWT_SECRET: 'x'.repeat(32) };
  it('need an audience with an issuer, and an issuer with either of the others, naming the variable', () => {
    expect(() => loadConfig({ ...base, OIDC_ISSUER: 'https://id.example.com' })).toThrow(/OIDC_AUDIENCE/);
    expect(() => loadConfig({ ...base, OIDC_AUDIENCE: 'api' })).toThrow(/OIDC_ISSUER/);
    expect(loadConfig({ ...base, OIDC_ISSUER: 'https://id.example.com', OIDC_AUDIENCE: 'api' }).oidc).toMatchObject({ issuer: 'https://id.example.com', audience: 'api', newUsers: 'link', clockSkewSeconds: 60, jwksMinIntervalMs: 30_000 });
    expect(loadConfig(base).oidc).toBeNull();
  });
});
