/**
 * The direct reads (src/http/direct-reads.ts) answer the guarded GET reads in front of Elysia. They must
 * answer exactly as the Elysia routes do: every request below goes to an app with the direct reads and
 * to a twin that answers through Elysia alone (same services and database, a limiter of its own that
 * sees the same requests), and the status, body and every header but the request id must match.
 */
import { describe, expect, it, spyOn } from 'bun:test';
import { createApp, type AppDeps } from '../../src/app.ts';
import { ClientAddresses } from '../../src/http/client-address.ts';
import { deeplyFrozen, REFUSAL_HEADERS_MAX, RefusalHeaders } from '../../src/http/direct-reads.ts';
import { RequestLog } from '../../src/http/request-log.ts';
import { createMemoryLogger } from '../../src/lib/logger.ts';
import { makeTestApp, PEER_HEADER } from '../helpers/app.ts';

const DIRECT_PATHS = ['/api/v1/users/me', '/api/v1/api-keys', '/api/v1/tunnels'];
/** Served directly to anyone, no credential, no rate limit. */
const PUBLIC_PATHS = ['/health'];
const ALL_PATHS = [...DIRECT_PATHS, ...PUBLIC_PATHS];
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
  it('serve the guarded GET reads with static paths and GET /health, and only those', () => {
    const { t } = twins({});
    expect(t.app.direct.paths.sort()).toEqual(ALL_PATHS.flatMap((p) => [p, `${p}/`]).sort());
    const guardedStaticGets = t.app.elysia.routes
      .filter((route) => route.method === 'GET' && route.path.startsWith('/api/v1/') && !route.path.includes(':'))
      .map((route) => route.path);
    expect(guardedStaticGets.sort()).toEqual([...DIRECT_PATHS].sort());
  });

  it('answer every request exactly as Elysia does, limiter off', async () => {
    const pair = twins({ EXPOSE_RATE_LIMIT_API: '0', EXPOSE_RATE_LIMIT_AUTH: '0' });
    const { key, token } = await pair.t.registerWithKey();
    let answered = 0;
    for (const path of ALL_PATHS) for (const variant of variants(key, token)) if (await compare(pair, path, variant)) answered++;
    // Everything but the five fall-through variants, on each path.
    expect(answered).toBe(ALL_PATHS.length * (variants(key, token).length - 5));
  });

  it('answer every request exactly as Elysia does while buckets run dry (RateLimit, 429, Retry-After)', async () => {
    const pair = twins({ EXPOSE_RATE_LIMIT_API: '7', EXPOSE_RATE_LIMIT_AUTH: '0' });
    const { key, token } = await pair.t.registerWithKey();
    // Creating the key took a token from the account's bucket in the direct app only: take one from the twin's.
    await pair.elysiaOnly(new Request('http://localhost/api/v1/users/me', { headers: { authorization: `Bearer ${token}` } }));
    for (let round = 0; round < 3; round++) {
      for (const path of ALL_PATHS) for (const variant of variants(key, token)) await compare(pair, path, variant);
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

  it('answer GET /health as Elysia does once the database stops answering (503)', async () => {
    const pair = twins({ EXPOSE_RATE_LIMIT_API: '0' });
    const { key, token } = await pair.t.registerWithKey();
    pair.t.db.sqlite.close();
    let answered = 0;
    for (const variant of variants(key, token)) if (await compare(pair, '/health', variant)) answered++;
    expect(answered).toBe(variants(key, token).length - 5);
    expect(statuses.has(503)).toBe(true);
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

  describe('answer texts remembered for frozen values', () => {
    /** GET /users/me with `key`, answered by the direct read; its status and body. */
    async function me(t: ReturnType<typeof makeTestApp>, key: string) {
      const res = (await t.app.fetch(new Request('http://localhost/api/v1/users/me', { headers: { authorization: `Bearer ${key}` } }))) as Response;
      return { status: res.status, body: await res.text() };
    }

    it('serialise the cached, frozen account view once for any number of reads', async () => {
      const t = makeTestApp({ EXPOSE_RATE_LIMIT_API: '0' });
      const { key, userId } = await t.registerWithKey();
      const view = t.services.users.view(userId)!;
      expect(Object.isFrozen(view)).toBe(true);
      const stringify = spyOn(JSON, 'stringify');
      try {
        const answers = [];
        for (let i = 0; i < 5; i++) answers.push(await me(t, key));
        expect(new Set(answers.map((a) => a.body)).size).toBe(1);
        expect(JSON.parse(answers[0]!.body)).toEqual({ ...view });
        // The view, or the cleaned copy of it that is serialised: at most once (the first answer may come from before the spy).
        const serialised = stringify.mock.calls.filter(([value]) => (value as { id?: unknown } | null)?.id === userId);
        expect(serialised.length).toBeLessThanOrEqual(1);
      } finally {
        stringify.mockRestore();
      }
    });

    // Each read returns the same object every time; between the two requests `change` alters what it
    // would serialise to. A value that is not deeply frozen must be serialised afresh each time.
    const changeable: Array<{ name: string; make: () => { value: object; change: () => void } }> = [
      {
        name: 'an object that is not frozen',
        make: () => {
          const value = { id: '00000000-0000-4000-8000-000000000001', email: 'a@example.com', created_at: '2026-01-01T00:00:00Z' };
          return { value, change: () => void (value.email = 'b@example.com') };
        },
      },
      {
        name: 'a frozen object whose email a getter answers',
        make: () => {
          let email = 'a@example.com';
          const value = Object.freeze(
            Object.defineProperties({} as Record<string, unknown>, {
              id: { value: '00000000-0000-4000-8000-000000000001', enumerable: true },
              email: { get: () => email, enumerable: true },
              created_at: { value: '2026-01-01T00:00:00Z', enumerable: true },
            }),
          );
          return { value, change: () => void (email = 'b@example.com') };
        },
      },
      {
        name: 'a frozen object of another class with a toJSON that changes',
        make: () => {
          let email = 'a@example.com';
          class View {
            toJSON() {
              return { id: '00000000-0000-4000-8000-000000000001', email, created_at: '2026-01-01T00:00:00Z' };
            }
          }
          return { value: Object.freeze(new View()), change: () => void (email = 'b@example.com') };
        },
      },
    ];

    for (const { name, make } of changeable) {
      it(`serialise ${name} afresh each time`, async () => {
        const t = makeTestApp({ EXPOSE_RATE_LIMIT_API: '0' });
        const { key } = await t.registerWithKey();
        const { value, change } = make();
        const view = t.services.users.view.bind(t.services.users);
        t.services.users.view = () => value as never;
        try {
          const first = await me(t, key);
          change();
          const second = await me(t, key);
          // What Elysia answers for the changed value is the reference (the class one has no fields of the schema: Elysia's answer, whatever it is).
          const elysia = (await t.app.elysia.fetch(new Request('http://localhost/api/v1/users/me', { headers: { authorization: `Bearer ${key}`, 'x-forwarded-for': '192.0.2.77' } }))) as Response;
          expect(second).toEqual({ status: elysia.status, body: await elysia.text() });
          if (first.status === 200 && second.status === 200) expect(second.body).not.toBe(first.body);
        } finally {
          t.services.users.view = view;
        }
      });
    }

    it('never remember a frozen value that breaks the schema: every read of it answers 500', async () => {
      const t = makeTestApp({ EXPOSE_RATE_LIMIT_API: '0' });
      const { key } = await t.registerWithKey();
      const view = t.services.users.view.bind(t.services.users);
      const broken = Object.freeze({ id: 42 });
      t.services.users.view = () => broken as never;
      try {
        for (let i = 0; i < 3; i++) expect((await me(t, key)).status).toBe(500);
      } finally {
        t.services.users.view = view;
      }
    });

    it('count as deeply frozen only frozen plain objects and arrays of such values', () => {
      const table: Array<[string, unknown, boolean]> = [
        ['a string', 'x', true],
        ['null', null, true],
        ['a frozen plain object of primitives', Object.freeze({ a: 1, b: 'x', c: null }), true],
        ['a frozen object without a prototype', Object.freeze(Object.assign(Object.create(null), { a: 1 })), true],
        ['a frozen array of frozen objects', Object.freeze([Object.freeze({ a: 1 }), Object.freeze({ b: 2 })]), true],
        ['a plain object', { a: 1 }, false],
        ['a sealed object', Object.seal({ a: 1 }), false],
        ['a frozen object holding a plain one', Object.freeze({ a: { b: 1 } }), false],
        ['a frozen array holding a plain object', Object.freeze([{ a: 1 }]), false],
        ['a frozen array of a plain array', Object.freeze([[1]]), false],
        ['a frozen Date', Object.freeze(new Date(0)), false],
        ['a frozen Map', Object.freeze(new Map()), false],
        ['a frozen object with a getter', Object.freeze(Object.defineProperty({}, 'a', { get: () => 1, enumerable: true })), false],
        ['a frozen object holding a function', Object.freeze({ toJSON: () => 1 }), false],
        ['a frozen class instance', Object.freeze(new (class {})()), false],
      ];
      for (const [name, value, expected] of table) expect([name, deeplyFrozen(value)]).toEqual([name, expected]);
    });
  });

  describe('refusal headers, made once per distinct set', () => {
    const entries = (headers: Headers) => [...headers.entries()].filter(([name]) => name !== 'x-request-id').sort(([a], [b]) => a.localeCompare(b));

    it('reuse one set for the same extras and keep different extras apart, whichever object carries them', () => {
      const table = new RefusalHeaders();
      const a = table.of({ 'retry-after': '5', ratelimit: '"general";r=0;t=5' }, {});
      expect(table.of({ 'retry-after': '5', ratelimit: '"general";r=0;t=5' }, {})).toBe(a);
      // The same headers in the same order, split differently between the two objects: the same set.
      expect(table.of({ 'retry-after': '5' }, { ratelimit: '"general";r=0;t=5' })).toBe(a);
      const cases: Array<[Record<string, unknown>, Record<string, unknown>]> = [
        [{ 'retry-after': '4', ratelimit: '"general";r=0;t=5' }, {}],
        [{ 'retry-after': '5', ratelimit: '"general";r=0;t=4' }, {}],
        [{ 'retry-after': '5', ratelimit: '"general";r=0;t=5' }, { 'WWW-Authenticate': 'Bearer' }],
        [{}, { 'WWW-Authenticate': 'Bearer' }],
        [{}, {}],
      ];
      const seen = new Set<Headers>([a]);
      for (const [first, second] of cases) {
        const headers = table.of(first, second);
        expect(seen.has(headers)).toBe(false);
        seen.add(headers);
        const expected = Object.entries({ ...first, ...second }).map(([name, value]) => [name.toLowerCase(), String(value)]);
        for (const pair of expected) expect(entries(headers)).toContainEqual(pair as [string, string]);
        // Nothing of another set: only the base headers and these extras.
        expect(entries(headers).length).toBe(entries(table.of({}, {})).length + expected.length);
      }
    });

    it('let the second object win over the first for the same header, as a spread does', () => {
      const headers = new RefusalHeaders().of({ 'retry-after': '1' }, { 'Retry-After': '9' });
      expect(headers.get('retry-after')).toBe('9');
    });

    it('hold at most REFUSAL_HEADERS_MAX sets, however many distinct ones come', () => {
      const table = new RefusalHeaders();
      const first = table.of({ 'retry-after': '0' }, {});
      for (let i = 1; i <= REFUSAL_HEADERS_MAX * 3; i++) table.of({ 'retry-after': String(i) }, {});
      expect(table.size).toBeGreaterThan(0);
      expect(table.size).toBeLessThanOrEqual(REFUSAL_HEADERS_MAX);
      // The first set was dropped with the rest: asked again, it is made anew, with the same headers.
      const again = table.of({ 'retry-after': '0' }, {});
      expect(again).not.toBe(first);
      expect(entries(again)).toEqual(entries(first));
    });
  });
});
