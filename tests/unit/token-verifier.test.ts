import { describe, expect, it } from 'vitest';
import { SignJWT } from 'jose';
import { secretKey, TokenVerifier } from '../../src/modules/auth/auth.js';

const key = secretKey('a-test-secret-of-at-least-32-characters!');
const T0 = Date.parse('2026-11-29T12:00:00Z');

function token(sub: string, role: string, expSeconds: number): Promise<string> {
  return new SignJWT({ role }).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setIssuedAt(T0 / 1000).setExpirationTime(expSeconds).sign(key);
}

describe('TokenVerifier', () => {
  it('remembers a verified token only until its exp, after which it is refused like any expired token', async () => {
    let now = T0;
    const verifier = new TokenVerifier(key, 100, () => now);
    const jwt = await token('7', 'USER', T0 / 1000 + 60);
    expect(await verifier.viewerFromAuthorization(`Bearer ${jwt}`)).toEqual({ id: 7, role: 'USER' });
    expect(verifier.size).toBe(1);
    now = T0 + 59_000;
    expect(await verifier.viewerFromAuthorization(`Bearer ${jwt}`)).toEqual({ id: 7, role: 'USER' });
    now = T0 + 61_000;
    await expect(verifier.viewerFromAuthorization(`Bearer ${jwt}`)).rejects.toMatchObject({ extensions: { code: 'UNAUTHENTICATED' } });
    expect(verifier.size).toBe(0);
  });

  it('never remembers a failure, and a remembered token does not vouch for an altered one', async () => {
    const verifier = new TokenVerifier(key, 100, () => T0);
    const jwt = await token('1', 'ADMIN', T0 / 1000 + 600);
    await verifier.viewerFromAuthorization(`Bearer ${jwt}`);
    const [header, , signature] = jwt.split('.');
    const forged = `${header}.${Buffer.from(JSON.stringify({ role: 'ADMIN', sub: '2', exp: T0 / 1000 + 600 })).toString('base64url')}.${signature}`;
    for (const bad of [forged, `${jwt}x`, 'not.a.jwt']) {
      await expect(verifier.viewerFromAuthorization(`Bearer ${bad}`)).rejects.toMatchObject({ extensions: { code: 'UNAUTHENTICATED' } });
    }
    expect(verifier.size).toBe(1);
  });

  it('keeps at most its bound, dropping the least recently used, which verifies again when it returns', async () => {
    const verifier = new TokenVerifier(key, 2, () => T0);
    const [a, b, c] = await Promise.all(['1', '2', '3'].map((sub) => token(sub, 'USER', T0 / 1000 + 600)));
    await verifier.viewerFromAuthorization(`Bearer ${a}`);
    await verifier.viewerFromAuthorization(`Bearer ${b}`);
    await verifier.viewerFromAuthorization(`Bearer ${a}`); // a is now the most recent
    await verifier.viewerFromAuthorization(`Bearer ${c}`); // b goes
    expect([a, b, c].map((t) => verifier.remembers(t!))).toEqual([true, false, true]);
    expect(await verifier.viewerFromAuthorization(`Bearer ${b}`)).toEqual({ id: 2, role: 'USER' });
    expect([a, b, c].map((t) => verifier.remembers(t!))).toEqual([false, true, true]);
    expect(verifier.size).toBe(2);
  });

  it('treats no header as anonymous and a malformed header as UNAUTHENTICATED', async () => {
    const verifier = new TokenVerifier(key);
    expect(await verifier.viewerFromAuthorization(undefined)).toBeNull();
    expect(await verifier.viewerFromAuthorization('')).toBeNull();
    await expect(verifier.viewerFromAuthorization('Basic abc')).rejects.toMatchObject({ extensions: { code: 'UNAUTHENTICATED' } });
  });
});
