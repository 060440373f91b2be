/** Session token signing and verification. */
import { describe, expect, it } from 'bun:test';
import { createHmac } from 'node:crypto';
import { SignJWT } from 'jose';
import { isCanonicalJwt, JwtCodec, JWT_TTL_SECONDS } from '../../src/lib/jwt.ts';

const SECRET = 'a-secret-of-more-than-thirty-two-bytes!!';
const NOW = 1_800_000_000;

const segment = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
/** A token with any header and payload, carrying a valid HS256 signature under `secret`. */
function handMade(header: unknown, payload: unknown, secret = SECRET): string {
  const signed = `${segment(header)}.${segment(payload)}`;
  return `${signed}.${createHmac('sha256', secret).update(signed).digest('base64url')}`;
}
const CLAIMS = { sub: 'u', jti: 's', iat: NOW, exp: NOW + 10 };

describe('JwtCodec', () => {
  it('signs HS256 tokens with sub, jti, iat and exp = iat + 7 days', async () => {
    const codec = new JwtCodec(SECRET);
    const token = await codec.sign('user-1', 'session-1', NOW);
    expect(await codec.verify(token, NOW)).toEqual({ sub: 'user-1', jti: 'session-1', iat: NOW, exp: NOW + JWT_TTL_SECONDS });
  });

  it('refuses a token from its expiry on, even once cached', async () => {
    const codec = new JwtCodec(SECRET);
    const token = await codec.sign('u', 's', NOW);
    expect(await codec.verify(token, NOW + JWT_TTL_SECONDS - 1)).not.toBeNull();
    expect(await codec.verify(token, NOW + JWT_TTL_SECONDS)).toBeNull();
  });

  it('refuses a token signed with another secret, or by another codec', async () => {
    const token = await new JwtCodec('another-secret-of-more-than-32-bytes!!').sign('u', 's', NOW);
    expect(await new JwtCodec(SECRET).verify(token, NOW)).toBeNull();
  });

  it('refuses a token whose iat is in the future beyond a minute of skew', async () => {
    const codec = new JwtCodec(SECRET);
    expect(await codec.verify(await codec.sign('u', 's', NOW + 60), NOW)).not.toBeNull();
    expect(await codec.verify(await codec.sign('u', 's2', NOW + 61), NOW)).toBeNull();
  });

  it('refuses other algorithms and missing claims', async () => {
    const codec = new JwtCodec(SECRET);
    const key = new TextEncoder().encode(SECRET);
    const hs384 = await new SignJWT({}).setProtectedHeader({ alg: 'HS384' }).setSubject('u').setJti('s').setIssuedAt(NOW).setExpirationTime(NOW + 10).sign(key);
    const noSub = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setJti('s').setIssuedAt(NOW).setExpirationTime(NOW + 10).sign(key);
    const noExp = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('u').setJti('s').setIssuedAt(NOW).sign(key);
    for (const token of [hs384, noSub, noExp]) expect(await codec.verify(token, NOW)).toBeNull();
  });

  it('answers synchronously, so the credential check never waits', async () => {
    const codec = new JwtCodec(SECRET);
    const token = await codec.sign('u', 's', NOW);
    // Twice: the first call checks the signature, the second answers from the cache.
    for (let i = 0; i < 2; i++) expect(codec.verify(token, NOW)).toEqual({ sub: 'u', jti: 's', iat: NOW, exp: NOW + JWT_TTL_SECONDS });
  });

  it('accepts what jose accepts: a validly signed HS256 token, with other header fields and claims', () => {
    const codec = new JwtCodec(SECRET);
    expect(codec.verify(handMade({ alg: 'HS256', typ: 'JWT' }, CLAIMS), NOW)).toEqual(CLAIMS);
    expect(codec.verify(handMade({ alg: 'HS256', kid: 'k1' }, { ...CLAIMS, scope: 'x', nbf: NOW - 5 }), NOW)).toEqual(CLAIMS);
  });

  it('refuses a valid HMAC under a header or payload jose would refuse', () => {
    const codec = new JwtCodec(SECRET);
    const refused: Array<[unknown, unknown]> = [
      [{ alg: 'none' }, CLAIMS],
      [{ alg: 'HS512' }, CLAIMS],
      [{ typ: 'JWT' }, CLAIMS],
      [{ alg: 'HS256', crit: ['exp'] }, CLAIMS],
      [{ alg: 'HS256', b64: false }, CLAIMS],
      [['HS256'], CLAIMS],
      [{ alg: 'HS256' }, [CLAIMS]],
      [{ alg: 'HS256' }, 'a string'],
      [{ alg: 'HS256' }, { ...CLAIMS, nbf: NOW + 1 }],
      [{ alg: 'HS256' }, { ...CLAIMS, nbf: 'soon' }],
      [{ alg: 'HS256' }, { ...CLAIMS, iat: String(NOW) }],
      [{ alg: 'HS256' }, { ...CLAIMS, sub: 42 }],
      [{ alg: 'HS256' }, { ...CLAIMS, exp: NOW }],
    ];
    for (const [header, payload] of refused) expect(codec.verify(handMade(header, payload), NOW)).toBeNull();
    // Not JSON at all, signed.
    const signed = `${Buffer.from('{"alg":"HS256"').toString('base64url')}.${segment(CLAIMS)}`;
    expect(codec.verify(`${signed}.${createHmac('sha256', SECRET).update(signed).digest('base64url')}`, NOW)).toBeNull();
  });

  it('refuses a signature that differs in any byte, or is shorter or longer', () => {
    const codec = new JwtCodec(SECRET);
    const token = handMade({ alg: 'HS256' }, CLAIMS);
    const [header, payload, signature] = token.split('.') as [string, string, string];
    const bytes = Buffer.from(signature, 'base64url');
    for (let i = 0; i < bytes.length; i++) {
      const flipped = Buffer.from(bytes);
      flipped[i]! ^= 0x01;
      expect(codec.verify(`${header}.${payload}.${flipped.toString('base64url')}`, NOW)).toBeNull();
    }
    expect(codec.verify(`${header}.${payload}.${bytes.subarray(0, 31).toString('base64url')}`, NOW)).toBeNull();
    expect(codec.verify(`${header}.${payload}.${Buffer.concat([bytes, Buffer.from([0])]).toString('base64url')}`, NOW)).toBeNull();
    expect(codec.verify(handMade({ alg: 'HS256' }, CLAIMS, 'another-secret-of-more-than-32-bytes!!'), NOW)).toBeNull();
  });

  it('stays bounded when fed many distinct valid tokens', async () => {
    const codec = new JwtCodec(SECRET);
    for (let i = 0; i < 10_050; i++) await codec.verify(await codec.sign('u', `s${i}`, NOW), NOW);
    expect(codec.cacheSize).toBeLessThanOrEqual(10_000);
    expect(codec.cacheSize).toBeGreaterThan(0);
    // An evicted token is simply verified again.
    expect(await codec.verify(await codec.sign('u', 's0', NOW), NOW)).not.toBeNull();
  });

  it('refuses every other spelling of a valid token: padding, whitespace, standard base64, stray low bits', async () => {
    const codec = new JwtCodec(SECRET);
    const token = await codec.sign('u', 's', NOW);
    const [header, payload, signature] = token.split('.') as [string, string, string];
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    // HS256 signatures are 32 bytes: 43 characters, the last of which carries 2 unused bits.
    const last = alphabet.indexOf(signature.at(-1)!);
    const strayBits = `${signature.slice(0, -1)}${alphabet[last ^ 1]}`;
    expect(Buffer.from(strayBits, 'base64url').equals(Buffer.from(signature, 'base64url'))).toBe(true);
    const respellings = [
      `${token}=`,
      `${token}==`,
      `${header}.${payload}.${signature.slice(0, 10)} ${signature.slice(10)}`,
      `${header}.${payload}.${signature.slice(0, 10)}\n${signature.slice(10)}`,
      `${header}=.${payload}.${signature}`,
      `${header}.${payload}.${strayBits}`,
      `${header}.${payload}.${Buffer.from(signature, 'base64url').toString('base64')}`,
    ];
    expect(await codec.verify(token, NOW)).not.toBeNull();
    for (const respelled of respellings) {
      expect(isCanonicalJwt(respelled)).toBe(false);
      expect(await codec.verify(respelled, NOW)).toBeNull();
    }
  });
});
