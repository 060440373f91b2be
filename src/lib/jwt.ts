/**
 * HS256 session tokens. The algorithm is pinned (anything else, `none` included, is refused), every
 * claim is required, and time comes from the caller so tests can move it. Verified signatures are
 * cached: a cached token still has its expiry checked on every call, and session revocation is
 * checked by the caller against the database on every request, so the cache never extends a token's life.
 *
 * jose signs. Verification is the few steps HS256 needs, done here synchronously (jose's verify is
 * asynchronous, and an await in the credential check makes every guarded answer asynchronous): the
 * one canonical spelling, the HMAC compared in constant time before anything in the token is parsed,
 * then a header that names HS256 and nothing jose would refuse, then the claims.
 *
 * jose is imported on the first signature (a register or a login, which hashes a password for ~100 ms
 * anyway), not at start-up: evaluating it cost every start, and every CLI command, half a millisecond.
 */

/** Session lifetime: 7 days. */
export const JWT_TTL_SECONDS = 7 * 24 * 60 * 60;
/** How far in the future `iat` may be before a token is refused (clock skew between restarts/hosts). */
const IAT_SKEW_SECONDS = 60;
/** Verified tokens remembered; at the cap the oldest half is dropped. */
const VERIFIED_CACHE_MAX = 10_000;

/** The claims every session token carries. */
export interface SessionClaims {
  sub: string;
  jti: string;
  iat: number;
  exp: number;
}

const BASE64URL_SEGMENTS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/**
 * Whether `token` is three base64url segments in their one canonical spelling: no padding, no
 * whitespace, and no stray bits in a segment's last character. Decoders forgive all three, so
 * `<token>=`, a space inside the signature or a flipped low bit in its last character would verify
 * as the same token: a token would have many spellings, each a different cache and log key.
 */
export function isCanonicalJwt(token: string): boolean {
  if (!BASE64URL_SEGMENTS.test(token)) return false;
  for (const segment of token.split('.')) {
    if (Buffer.from(segment, 'base64url').toString('base64url') !== segment) return false;
  }
  return true;
}

/** A JSON object from one base64url segment of a token, or null. */
function decodeSegment(segment: string): Record<string, unknown> | null {
  try {
    const value: unknown = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** Signs and verifies session tokens with one secret. */
export class JwtCodec {
  private readonly key: Uint8Array;
  private readonly verified = new Map<string, SessionClaims>();

  constructor(secret: string) {
    this.key = new TextEncoder().encode(secret);
  }

  /** A token for `sub`/`jti` issued at `iatSeconds`, expiring JWT_TTL_SECONDS later. */
  async sign(sub: string, jti: string, iatSeconds: number): Promise<string> {
    const { SignJWT } = await import('jose');
    return new SignJWT({})
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setSubject(sub)
      .setJti(jti)
      .setIssuedAt(iatSeconds)
      .setExpirationTime(iatSeconds + JWT_TTL_SECONDS)
      .sign(this.key);
  }

  /** The claims of a valid, unexpired token at `nowSeconds`, or null. Never throws. */
  verify(token: string, nowSeconds: number): SessionClaims | null {
    let claims: SessionClaims | null | undefined = this.verified.get(token);
    if (!claims) {
      claims = this.verifySignature(token, nowSeconds);
      if (!claims) return null;
      if (this.verified.size >= VERIFIED_CACHE_MAX) this.evictOldestHalf();
      this.verified.set(token, claims);
    }
    if (nowSeconds >= claims.exp || claims.iat > nowSeconds + IAT_SKEW_SECONDS) return null;
    return claims;
  }

  private verifySignature(token: string, nowSeconds: number): SessionClaims | null {
    if (!isCanonicalJwt(token)) return null;
    const [header, payload, signature] = token.split('.') as [string, string, string];
    // Bun's own HMAC and constant-time compare: node:crypto's would be loaded at every start for these two.
    const expected = new Bun.CryptoHasher('sha256', this.key).update(`${header}.${payload}`).digest();
    const presented = Buffer.from(signature, 'base64url');
    if (presented.length !== expected.length || !crypto.timingSafeEqual(presented, expected)) return null;
    const protectedHeader = decodeSegment(header);
    // What jose refuses as well: another algorithm, and extensions it does not know (`crit`, `b64`).
    if (protectedHeader?.alg !== 'HS256' || 'crit' in protectedHeader || 'b64' in protectedHeader) return null;
    const claims = decodeSegment(payload);
    if (!claims) return null;
    const { sub, jti, iat, exp, nbf } = claims;
    if (typeof sub !== 'string' || typeof jti !== 'string' || typeof iat !== 'number' || typeof exp !== 'number') return null;
    if (nbf !== undefined && (typeof nbf !== 'number' || nbf > nowSeconds)) return null;
    // A token claiming a longer life than we ever issue was not made by this server's rules.
    if (exp - iat > JWT_TTL_SECONDS) return null;
    return { sub, jti, iat, exp };
  }

  /** Verified tokens held in memory; never more than VERIFIED_CACHE_MAX. */
  get cacheSize(): number {
    return this.verified.size;
  }

  private evictOldestHalf(): void {
    let drop = this.verified.size / 2;
    for (const token of this.verified.keys()) {
      if (drop-- <= 0) break;
      this.verified.delete(token);
    }
  }
}
