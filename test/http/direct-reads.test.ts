/**
 * The direct reads (src/http/direct-reads.ts) answer the guarded GET reads in front of Elysia. They must
 * answer exactly as the Elysia routes do: every request below goes to an app with the direct reads and
 * to a twin that answers through Elysia alone (same services and database, a limiter of its own that
 * sees the same requests), and the status, body and every header but the request id must match.
 */
import { describe, expect, it } from 'bun:test';
import { createApp, type AppDeps } from '../../src/app.ts';
import { ClientAddresses } from '../../src/http/client-address.ts';
import { RequestLog } from '../../src/http/request-log.ts';
import { createMemoryLogger } from '../../src/lib/logger.ts';
import { makeTestApp, PEER_HEADER } from '../helpers/app.ts';

const DIRECT_PATHS = ['/api/v1/users/me', '/api/v1/api-keys', '/api/v1/tunnels'];
const BAD_KEY = 'exp_k1_0000000000000000000000000000000000000000000000';

interface Answer {
  status: number;
  body: string;
  headers: Array<[string, string]>;
  requestId: string | null;
}

async function read(response: Response | Promise<Response>): Promise<Answer> {
  const res = await response;
  const headers = [...res.headers.entries()].filter(([name]) => name !== 'x-request-id').sort(([a], [b]) => a.localeCompare(b));
  return { status: res.status, body: await res.text(), headers, requestId: res.headers.get('x-request-id') };
}

/** An app with the direct reads, and a twin on the same services that answers through Elysia alone. */
function twins(env: Record<string, string>) {
  const t = makeTestApp(env);
  const socketAddress = (request: Request) => request.headers.get(PEER_HEADER) ?? '192.0.2.1';
  const deps: AppDeps = { config: t.config, db: t.db, jwtSecret: 'test-secret-that-is-at-least-32-bytes-long!!', logger: createMemoryLogger(), clock: t.clock, socketAddress };
  const twin = createApp(deps, t.services);
  const elysiaOnly = new RequestLog(createMemoryLogger(), new ClientAddresses(socketAddress, t.config.trustedProxies)).wrap(twin.elysia.fetch);
  return { t, elysiaOnly };
}

type Variant = { name: string; path?: string; method?: string; headers?: Record<string, string> };

function variants(key: string, token: string): Variant[] {
  return [
    { name: 'API key', headers: { authorization: `Bearer ${key}` } },
    { name: 'session token', headers: { authorization: `Bearer ${token}` } },
    { name: 'lower-case scheme', headers: { authorization: `bearer ${key}` } },
    { name: 'spaces around the key', headers: { authorization: `Bearer   ${key}  ` } },
    { name: 'no Authorization' },
    { name: 'empty Bearer', headers: { authorization: 'Bearer ' } },
    { name: 'Basic', headers: { authorization: 'Basic dXNlcjpwYXNz' } },
    { name: 'unknown key', headers: { authorization: `Bearer ${BAD_KEY}` } },
    { name: 'bad checksum', headers: { authorization: `Bearer ${key.slice(0, -1)}${key.endsWith('0') ? '1' : '0'}` } },
    { name: 'forged token', headers: { authorization: `Bearer ${token.slice(0, -2)}AA` } },
    { name: 'over-long credential', headers: { authorization: `Bearer ${'a'.repeat(5000)}` } },
    { name: 'query string', path: '?limit=1', headers: { authorization: `Bearer ${key}` } },
    { name: 'trailing slash', path: '/', headers: { authorization: `Bearer ${key}` } },
    { name: 'own request id', headers: { authorization: `Bearer ${key}`, 'x-request-id': 'trace-42' } },
    { name: 'unsafe request id', headers: { authorization: `Bearer ${key}`, 'x-request-id': 'not safe: <script>' } },
    { name: 'another peer, 401', headers: { [PEER_HEADER]: '198.51.100.9', authorization: `Bearer ${BAD_KEY}` } },
    { name: 'X-Forwarded-For, untrusted', headers: { 'x-forwarded-for': '203.0.113.5', authorization: `Bearer ${key}` } },
    // These fall through to Elysia in the app with direct reads too.
    { name: 'HEAD', method: 'HEAD', headers: { authorization: `Bearer ${key}` } },
    { name: 'Content-Length: 0', headers: { authorization: `Bearer ${key}`, 'content-length': '0' } },
    { name: 'declared body over the limit', headers: { authorization: `Bearer ${key}`, 'content-length': String(1 << 20) } },
    { name: 'double slash', path: '//', headers: { authorization: `Bearer ${key}` } },
    { name: 'POST', method: 'POST', headers: { authorization: `Bearer ${key}` } },
  ];
}

/** Every status compare() saw, so a test can show which answers it covered. */
const statuses = new Set<number>();

/** Sends `variant` of `path` to both apps; the answers must match. Returns whether the direct reads answered it. */
async function compare(pair: ReturnType<typeof twins>, path: string, variant: Variant): Promise<boolean> {
  const make = () => new Request(`http://localhost${path}${variant.path ?? ''}`, { method: variant.method ?? 'GET', headers: variant.headers });
  const direct = pair.t.app.direct.answer(make(), 'probe') !== undefined;
  // The probe above took a token from the direct app's bucket: take the same from the twin's.
  if (direct) await pair.elysiaOnly(make());
  const [mine, theirs] = [await read(pair.t.app.fetch(make())), await read(pair.elysiaOnly(make()))];
  statuses.add(mine.status);
  const label = `${variant.name} ${variant.method ?? 'GET'} ${path}${variant.path ?? ''}`;
  expect({ label, ...mine, requestId: undefined }).toEqual({ label, ...theirs, requestId: undefined });
  expect({ label, id: mine.requestId !== null }).toEqual({ label, id: true });
  const sent = variant.headers?.['x-request-id'];
  if (sent === 'trace-42') expect([mine.requestId, theirs.requestId]).toEqual([sent, sent]);
  return direct;
}

describe('direct reads', () => {
  it('serve the guarded GET reads with static paths, and only those', () => {
    const { t } = twins({});
    expect(t.app.direct.paths.sort()).toEqual(DIRECT_PATHS.flatMap((p) => [p, `${p}/`]).sort());
    const guardedStaticGets = t.app.elysia.routes
      .filter((route) => route.method === 'GET' && route.path.startsWith('/api/v1/') && !route.path.includes(':'))
      .map((route) => route.path);
    expect(guardedStaticGets.sort()).toEqual([...DIRECT_PATHS].sort());
  });

  it('answer every request exactly as Elysia does, limiter off', async () => {
    const pair = twins({ EXPOSE_RATE_LIMIT_API: '0', EXPOSE_RATE_LIMIT_AUTH: '0' });
    const { key, token } = await pair.t.registerWithKey();
    let answered = 0;
    for (const path of DIRECT_PATHS) for (const variant of variants(key, token)) if (await compare(pair, path, variant)) answered++;
    // Everything but the four fall-through variants, on each path.
    expect(answered).toBe(DIRECT_PATHS.length * (variants(key, token).length - 5));
  });

  it('answer every request exactly as Elysia does while buckets run dry (RateLimit, 429, Retry-After)', async () => {
    const pair = twins({ EXPOSE_RATE_LIMIT_API: '7', EXPOSE_RATE_LIMIT_AUTH: '0' });
    const { key, token } = await pair.t.registerWithKey();
    // Creating the key took a token from the account's bucket in the direct app only: take one from the twin's.
    await pair.elysiaOnly(new Request('http://localhost/api/v1/users/me', { headers: { authorization: `Bearer ${token}` } }));
    for (let round = 0; round < 3; round++) {
      for (const path of DIRECT_PATHS) for (const variant of variants(key, token)) await compare(pair, path, variant);
      pair.t.clock.advance(4_000);
    }
    expect(statuses.has(200) && statuses.has(401) && statuses.has(429)).toBe(true);
  });

  it('answer as Elysia does once a key is revoked, a session ended, an account disabled or gone', async () => {
    const pair = twins({ EXPOSE_RATE_LIMIT_API: '0', EXPOSE_RATE_LIMIT_AUTH: '0' });
    const { key, token, keyId, userId } = await pair.t.registerWithKey();
    const other = await pair.t.registerWithKey();
    const check = async () => {
      for (const path of DIRECT_PATHS) {
        for (const credential of [key, token, other.key, other.token]) await compare(pair, path, { name: 'after a change', headers: { authorization: `Bearer ${credential}` } });
      }
    };
    await check();
    pair.t.services.apiKeys.revokeById(keyId);
    await check();
    await pair.t.request('POST', '/api/v1/auth/logout', { token });
    await check();
    pair.t.services.users.setDisabled(other.userId, true);
    await check();
    pair.t.services.users.setDisabled(other.userId, false);
    await check();
    pair.t.services.users.deleteAccount(userId);
    await check();
    pair.t.clock.advance(8 * 24 * 3600 * 1000);
    await check();
  });

  it('clean an answer of fields its schema does not name, as Elysia does, and refuse one that breaks it', async () => {
    const pair = twins({ EXPOSE_RATE_LIMIT_API: '0' });
    const { key, userId } = await pair.t.registerWithKey();
    const view = pair.t.services.users.view.bind(pair.t.services.users);
    pair.t.services.users.view = (id: string) => ({ ...view(id)!, password_hash: '$argon2id$secret' });
    const leaky = await compare(pair, '/api/v1/users/me', { name: 'extra field', headers: { authorization: `Bearer ${key}` } });
    expect(leaky).toBe(true);
    const res = pair.t.app.fetch(new Request('http://localhost/api/v1/users/me', { headers: { authorization: `Bearer ${key}` } })) as Response;
    const body = await res.text();
    expect(body).not.toContain('argon2id');
    expect(JSON.parse(body).id).toBe(userId);

    pair.t.services.users.view = () => ({ id: 42 }) as never;
    // Elysia's own path answers a broken answer the same way: our fault, a 500, not a validation_error.
    expect(await compare(pair, '/api/v1/users/me', { name: 'broken answer', headers: { authorization: `Bearer ${key}` } })).toBe(true);
    const broken = pair.t.app.fetch(new Request('http://localhost/api/v1/users/me', { headers: { authorization: `Bearer ${key}` } })) as Response;
    expect(broken.status).toBe(500);
    expect(await broken.json()).toEqual({ error: 'internal_error', message: 'Internal server error' });
    expect(pair.t.logs.some((line) => line.includes('unhandled error') && line.includes('response schema'))).toBe(true);
    pair.t.services.users.view = view;
  });

  it('answer a failure of the read with the 500 envelope and log its detail, never sending it', async () => {
    const t = makeTestApp({ EXPOSE_RATE_LIMIT_API: '0' });
    const { key } = await t.registerWithKey();
    const view = t.services.users.view.bind(t.services.users);
    t.services.users.view = () => {
      throw new Error('disk on fire: /var/lib/expose/secret-path');
    };
    const res = t.app.fetch(new Request('http://localhost/api/v1/users/me', { headers: { authorization: `Bearer ${key}` } })) as Response;
    expect(res).toBeInstanceOf(Response);
    expect(res.status).toBe(500);
    const body = await res.text();
    expect(JSON.parse(body)).toEqual({ error: 'internal_error', message: 'Internal server error' });
    expect(body).not.toContain('disk on fire');
    const logged = t.logs.find((line) => line.includes('unhandled error'));
    expect(logged).toContain('disk on fire');
    expect(JSON.parse(logged!).request_id).toBe(res.headers.get('x-request-id'));
    t.services.users.view = view;
  });
});
