/**
 * The shared auth attack table: every protected route must answer each of these with 401
 * `unauthorized`, `WWW-Authenticate: Bearer`, and change nothing.
 */
import { SignJWT } from 'jose';
import { JWT_TTL_SECONDS } from '../../src/lib/jwt.ts';
import { GOOD_PASSWORD, TEST_SECRET, type TestApp } from './app.ts';

/** A protected route, with a body that would succeed with a good credential. */
export interface ProtectedRoute {
  method: string;
  path: (ctx: AttackContext) => string;
  json?: unknown;
}

export const PROTECTED_ROUTES: ProtectedRoute[] = [
  { method: 'GET', path: () => '/api/v1/users/me' },
  { method: 'PUT', path: () => '/api/v1/users/me/password', json: { current_password: GOOD_PASSWORD, new_password: 'another-fine-zebra-77' } },
  { method: 'POST', path: () => '/api/v1/auth/logout' },
  { method: 'GET', path: () => '/api/v1/api-keys' },
  { method: 'POST', path: () => '/api/v1/api-keys', json: { name: 'attacker key' } },
  { method: 'DELETE', path: (ctx) => `/api/v1/api-keys/${ctx.keyId}` },
];

/** A victim account with a session and a key, in a fresh app. */
export interface AttackContext {
  t: TestApp;
  token: string;
  key: string;
  keyId: string;
  userId: string;
}

function b64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

function claimsOf(token: string): { sub: string; jti: string; iat: number; exp: number } {
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString());
}

const secretKey = (secret: string) => new TextEncoder().encode(secret);

/**
 * Each attack prepares the app if needed and returns the Authorization header value to send
 * (null: send none).
 */
export const ATTACKS: Array<{ name: string; header: (ctx: AttackContext) => Promise<string | null> | string | null }> = [
  { name: 'no Authorization header', header: () => null },
  { name: 'another scheme (Basic)', header: (ctx) => `Basic ${Buffer.from(`x:${ctx.key}`).toString('base64')}` },
  { name: 'the token without a scheme', header: (ctx) => ctx.token },
  { name: 'garbage', header: () => 'Bearer not-a-token-at-all' },
  { name: 'empty bearer', header: () => 'Bearer ' },
  {
    name: 'a tampered signature',
    header: (ctx) => {
      const [h, p, s] = ctx.token.split('.');
      const flipped = (s![0] === 'A' ? 'B' : 'A') + s!.slice(1);
      return `Bearer ${h}.${p}.${flipped}`;
    },
  },
  { name: 'the valid token with base64 padding after it', header: (ctx) => `Bearer ${ctx.token}=` },
  {
    name: 'the valid token with a space inside its signature',
    header: (ctx) => {
      const [h, p, s] = ctx.token.split('.');
      return `Bearer ${h}.${p}.${s!.slice(0, 8)} ${s!.slice(8)}`;
    },
  },
  {
    name: 'the valid token with stray bits in the last character of its signature',
    header: (ctx) => {
      const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
      const last = alphabet.indexOf(ctx.token.at(-1)!);
      return `Bearer ${ctx.token.slice(0, -1)}${alphabet[last ^ 1]}`;
    },
  },
  {
    name: 'a tampered payload (another user id)',
    header: (ctx) => {
      const [h, , s] = ctx.token.split('.');
      return `Bearer ${h}.${b64url({ ...claimsOf(ctx.token), sub: crypto.randomUUID() })}.${s}`;
    },
  },
  {
    name: 'alg: none',
    header: (ctx) => `Bearer ${b64url({ alg: 'none', typ: 'JWT' })}.${b64url(claimsOf(ctx.token))}.`,
  },
  {
    name: 'HS512 signed with the right secret',
    header: async (ctx) => {
      const c = claimsOf(ctx.token);
      const jwt = await new SignJWT({}).setProtectedHeader({ alg: 'HS512' }).setSubject(c.sub).setJti(c.jti).setIssuedAt(c.iat).setExpirationTime(c.exp).sign(secretKey(TEST_SECRET));
      return `Bearer ${jwt}`;
    },
  },
  {
    name: 'signed with a wrong secret',
    header: async (ctx) => {
      const c = claimsOf(ctx.token);
      const jwt = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(c.sub).setJti(c.jti).setIssuedAt(c.iat).setExpirationTime(c.exp).sign(secretKey('a-different-secret-of-at-least-32-bytes'));
      return `Bearer ${jwt}`;
    },
  },
  {
    name: 'an expired token',
    header: (ctx) => {
      ctx.t.clock.advance((JWT_TTL_SECONDS + 1) * 1000);
      return `Bearer ${ctx.token}`;
    },
  },
  {
    name: 'a future-dated token (right secret, live session)',
    header: async (ctx) => {
      const c = claimsOf(ctx.token);
      const iat = c.iat + 24 * 3600;
      const jwt = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(c.sub).setJti(c.jti).setIssuedAt(iat).setExpirationTime(iat + JWT_TTL_SECONDS).sign(secretKey(TEST_SECRET));
      return `Bearer ${jwt}`;
    },
  },
  {
    name: 'a token with a longer life than the server issues',
    header: async (ctx) => {
      const c = claimsOf(ctx.token);
      const jwt = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(c.sub).setJti(c.jti).setIssuedAt(c.iat).setExpirationTime(c.iat + 10 * JWT_TTL_SECONDS).sign(secretKey(TEST_SECRET));
      return `Bearer ${jwt}`;
    },
  },
  {
    name: 'a token missing its jti',
    header: async (ctx) => {
      const c = claimsOf(ctx.token);
      const jwt = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(c.sub).setIssuedAt(c.iat).setExpirationTime(c.exp).sign(secretKey(TEST_SECRET));
      return `Bearer ${jwt}`;
    },
  },
  {
    name: 'the JWT of a deleted user',
    header: (ctx) => {
      ctx.t.db.sqlite.run('DELETE FROM users WHERE id = ?', [ctx.userId]);
      return `Bearer ${ctx.token}`;
    },
  },
  {
    name: 'a logged-out session',
    header: async (ctx) => {
      const res = await ctx.t.request('POST', '/api/v1/auth/logout', { token: ctx.token });
      if (res.status !== 204) throw new Error(`logout answered ${res.status}`);
      return `Bearer ${ctx.token}`;
    },
  },
  {
    name: 'a session revoked by a password change elsewhere',
    header: async (ctx) => {
      const login = await ctx.t.request('POST', '/api/v1/auth/login', { json: { email: emailOf(ctx), password: GOOD_PASSWORD } });
      const other = ((await login.json()) as { token: string }).token;
      const res = await ctx.t.request('PUT', '/api/v1/users/me/password', {
        token: other,
        json: { current_password: GOOD_PASSWORD, new_password: 'a-brand-new-secret-55' },
      });
      if (res.status !== 200) throw new Error(`password change answered ${res.status}`);
      return `Bearer ${ctx.token}`;
    },
  },
  {
    name: 'a revoked API key',
    header: async (ctx) => {
      const res = await ctx.t.request('DELETE', `/api/v1/api-keys/${ctx.keyId}`, { token: ctx.token });
      if (res.status !== 204) throw new Error(`delete answered ${res.status}`);
      return `Bearer ${ctx.key}`;
    },
  },
  {
    name: 'an API key with a bad checksum',
    header: (ctx) => `Bearer ${ctx.key.slice(0, -1)}${ctx.key.endsWith('0') ? '1' : '0'}`,
  },
  { name: 'a truncated API key', header: (ctx) => `Bearer ${ctx.key.slice(0, -4)}` },
  {
    name: 'a well-formed API key that was never issued',
    header: () => {
      const secret = 'a'.repeat(40);
      return `Bearer exp_k1_${secret}${(Bun.hash.crc32(secret) >>> 0).toString(16).padStart(8, '0')}`;
    },
  },
];

function emailOf(ctx: AttackContext): string {
  const row = ctx.t.db.sqlite.query('SELECT email FROM users WHERE id = ?').get(ctx.userId) as { email: string };
  return row.email;
}

/** Everything stored, for checking that a refused request changed nothing. */
export function snapshot(t: TestApp): string {
  const tables = ['users', 'api_keys', 'sessions'];
  return JSON.stringify(tables.map((name) => t.db.sqlite.query(`SELECT * FROM ${name} ORDER BY id`).all()));
}
