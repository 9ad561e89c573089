import { describe, expect, it } from 'vitest';
import { exportJWK, generateKeyPair, jwtVerify, SignJWT } from 'jose';
import { IdentityProviderUnavailableError, JwksKeys } from '../../src/modules/identity/jwks.js';

/** The provider's key cache on a clock and a fetch of the test's own (the HTTP side is in identity.test.ts). */
async function setup() {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  const jwks = { keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256' }] };
  const token = await new SignJWT({}).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).setSubject('s').setExpirationTime('1h').sign(privateKey);
  let clock = 0;
  let mode: 'up' | 'down' | 'hang' = 'up';
  const calls: string[] = [];
  const fakeFetch = (async (url: string) => {
    calls.push(url);
    if (mode === 'down') throw new Error('connection refused');
    if (mode === 'hang') return new Promise(() => undefined);
    return new Response(JSON.stringify(jwks), { status: 200, headers: { 'content-type': 'application/json' } });
  }) as typeof fetch;
  const keys = new JwksKeys({ issuer: 'https://id.example.com', jwksUrl: 'https://id.example.com/jwks', refreshMs: 600_000, minIntervalMs: 30_000, timeoutMs: 3000, fetch: fakeFetch, now: () => clock });
  return { keys, token, calls, setMode: (m: typeof mode) => (mode = m), tick: (ms: number) => (clock += ms) };
}

describe('JwksKeys', () => {
  it('without keys and a provider that does not answer: unavailable, asking at most once a second', async () => {
    const s = await setup();
    s.setMode('down');
    await expect(jwtVerify(s.token, s.keys.getKey)).rejects.toBeInstanceOf(IdentityProviderUnavailableError);
    await expect(jwtVerify(s.token, s.keys.getKey)).rejects.toBeInstanceOf(IdentityProviderUnavailableError);
    expect(s.calls).toHaveLength(1);
    s.tick(1000);
    s.setMode('up');
    await expect(jwtVerify(s.token, s.keys.getKey)).resolves.toBeDefined();
    expect(s.calls).toHaveLength(2);
  });

  it('keys due for a fetch while the provider hangs: the token is checked at once with the keys there are, the fetch runs beside it', async () => {
    const s = await setup();
    await jwtVerify(s.token, s.keys.getKey);
    s.tick(600_001);
    s.setMode('hang');
    // Would never settle if the request waited for the fetch.
    await expect(jwtVerify(s.token, s.keys.getKey)).resolves.toBeDefined();
    expect(s.calls).toHaveLength(2);
    // And not asked again on every request while that fetch is out.
    await jwtVerify(s.token, s.keys.getKey);
    expect(s.calls).toHaveLength(2);
  });

  it('keeps the keys it has when a fetch fails', async () => {
    const s = await setup();
    await jwtVerify(s.token, s.keys.getKey);
    s.tick(600_001);
    s.setMode('down');
    await expect(jwtVerify(s.token, s.keys.getKey)).resolves.toBeDefined();
    await new Promise((resolve) => setTimeout(resolve, 10));
    await expect(jwtVerify(s.token, s.keys.getKey)).resolves.toBeDefined();
  });
});
