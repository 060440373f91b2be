/**
 * Fuzzing every endpoint that takes a JSON body (and the body-less ones, which must ignore bodies)
 * with fast-check: random shapes, huge strings, deep nesting, unicode, NUL bytes, lone surrogates,
 * numbers where strings belong, broken JSON and wrong media types. Whatever comes in: never a 500,
 * every refusal is the two-field envelope, and a refused request changes nothing that is stored.
 */
import { describe, expect, it } from 'bun:test';
import fc from 'fast-check';
import { GOOD_PASSWORD, makeTestApp, type TestApp } from '../helpers/app.ts';
import { snapshot } from '../helpers/attacks.ts';

/** Runs per property; the whole file stays within a few seconds. FUZZ_RUNS raises it for a deeper search. */
const NUM_RUNS = Number(process.env.FUZZ_RUNS ?? 300);
/** Generous: a loaded CI machine is slower, and FUZZ_RUNS may be raised. */
const TIMEOUT_MS = 120_000;

const BODY_ROUTES = [
  { method: 'POST', path: '/api/v1/auth/register', credential: 'none' },
  { method: 'POST', path: '/api/v1/auth/login', credential: 'none' },
  { method: 'PUT', path: '/api/v1/users/me/password', credential: 'jwt' },
  { method: 'POST', path: '/api/v1/api-keys', credential: 'jwt' },
] as const;

const BODYLESS_ROUTES = [
  { method: 'POST', path: '/api/v1/auth/logout', credential: 'jwt' },
  { method: 'GET', path: '/api/v1/users/me', credential: 'key' },
  { method: 'GET', path: '/api/v1/api-keys', credential: 'jwt' },
  { method: 'DELETE', path: '/api/v1/api-keys/{unknown}', credential: 'jwt' },
] as const;

const nasty = fc.constantFrom(
  '', ' ', '\u0000', 'a\u0000b@example.com', `${GOOD_PASSWORD}\u0000`, '\ud800', '\udfff', `x\ud800y@example.com`,
  'e\u0301'.repeat(10), '💥'.repeat(300), '\u202e', 'ＡＢＣ@ｅｘａｍｐｌｅ.ｃｏｍ', '__proto__', 'constructor',
  ' UPPER@Example.COM ', 'a@b', '@example.com', 'x'.repeat(255) + '@example.com', '<script>', "'; DROP TABLE users; --",
);
const text = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  nasty,
  fc.integer({ min: 0, max: 3000 }).map((n) => 'p'.repeat(n)),
);
const wrongType = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 4 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 }),
);
const plausible = fc.oneof(
  fc.emailAddress().filter((e) => e.length <= 254),
  fc.string({ minLength: 0, maxLength: 12 }).map((s) => `correct-zebra-${s}`),
  fc.constant(GOOD_PASSWORD),
);
const field = fc.oneof({ weight: 3, arbitrary: text }, { weight: 2, arbitrary: wrongType }, { weight: 2, arbitrary: plausible });
const shaped = fc.record(
  { email: field, password: field, current_password: field, new_password: field, name: field, extra: fc.jsonValue({ maxDepth: 2 }) },
  { requiredKeys: [] },
);
const deepText = fc.tuple(fc.integer({ min: 100, max: 30_000 }), fc.constantFrom('array', 'object')).map(([depth, kind]) =>
  kind === 'array' ? '['.repeat(depth) + ']'.repeat(depth) : '{"email":'.repeat(depth) + '1' + '}'.repeat(depth),
);
const body = fc.oneof(
  { weight: 5, arbitrary: shaped.map((value) => JSON.stringify(value)) },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((value) => JSON.stringify(value)) },
  { weight: 1, arbitrary: deepText },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 200 }) },
  { weight: 1, arbitrary: fc.constantFrom('', '{', '{"email":', 'null', '[]', '"str"', '{"email":"a@b.co","password":}', '\u0000') },
  // Around the 64 KiB limit, on both sides.
  { weight: 1, arbitrary: fc.integer({ min: 65_500, max: 66_000 }).map((n) => JSON.stringify({ email: 'a@example.com', password: 'x'.repeat(n) })) },
);
const contentType = fc.oneof(
  { weight: 6, arbitrary: fc.constant('application/json') },
  { weight: 3, arbitrary: fc.constantFrom('application/json; charset=utf-8', 'APPLICATION/JSON', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', '', 'application/jsonx', 'application/json;;;') },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme-ascii', maxLength: 30 }).filter((s) => !/[\r\n]/.test(s)) },
);

interface Fixture {
  t: TestApp;
  jwt: string;
  key: string;
}

async function fixture(): Promise<Fixture> {
  // Limits off: the fuzzer must reach every step behind them, not collect 429s.
  const t = makeTestApp({ EXPOSE_RATE_LIMIT_AUTH: '0', EXPOSE_RATE_LIMIT_API: '0', EXPOSE_MAX_API_KEYS: '3' });
  const { token, key } = await t.registerWithKey();
  // First use of a key writes last_used_at (by design); do it now, so later uses change nothing stored.
  expect((await t.request('GET', '/api/v1/users/me', { token: key })).status).toBe(200);
  return { t, jwt: token, key };
}

function credentialOf(f: Fixture, kind: 'none' | 'jwt' | 'key'): string | undefined {
  return kind === 'jwt' ? f.jwt : kind === 'key' ? f.key : undefined;
}

/** Sends one fuzzed request and checks the invariants; returns the status. */
async function probe(f: Fixture, method: string, path: string, credential: string | undefined, text: string, type: string): Promise<number> {
  const before = snapshot(f.t);
  const headers: Record<string, string> = {};
  if (type !== '') headers['content-type'] = type;
  const res = await f.t.request(method, path.replace('{unknown}', crypto.randomUUID()), { token: credential, headers, body: text });
  const answer = await res.text();
  expect(res.status).toBeLessThan(500);
  if (res.status >= 400) {
    const envelope = JSON.parse(answer) as Record<string, unknown>;
    expect(Object.keys(envelope).sort()).toEqual(['error', 'message']);
    expect(typeof envelope.error).toBe('string');
    expect(typeof envelope.message).toBe('string');
    expect(snapshot(f.t)).toBe(before);
  }
  return res.status;
}

describe('fuzzing the JSON endpoints', () => {
  for (const route of BODY_ROUTES) {
    it(`${route.method} ${route.path}: no 500, only the envelope, nothing stored on refusal`, async () => {
      const f = await fixture();
      const statuses = new Map<number, number>();
      await fc.assert(
        fc.asyncProperty(body, contentType, async (text, type) => {
          const status = await probe(f, route.method, route.path, credentialOf(f, route.credential), text, type);
          statuses.set(status, (statuses.get(status) ?? 0) + 1);
        }),
        { numRuns: NUM_RUNS },
      );
      if (process.env.FUZZ_DEBUG) console.log(route.path, Object.fromEntries(statuses));
      // The fuzzer got past the media-type and JSON checks into validation and the rules.
      expect(statuses.has(400)).toBe(true);
    }, TIMEOUT_MS);
  }

  it('body-less routes ignore whatever body they are sent', async () => {
    const f = await fixture();
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...BODYLESS_ROUTES.filter((r) => r.path !== '/api/v1/auth/logout')), body, contentType, async (route, text, type) => {
        const status = await probe(f, route.method, route.path, credentialOf(f, route.credential), text, type);
        expect([200, 404, 413]).toContain(status);
      }),
      { numRuns: Math.ceil(NUM_RUNS / 2) },
    );
  }, TIMEOUT_MS);

  it('login with fuzzed credentials never succeeds and never answers other than 400, 401, 413 or 415', async () => {
    const f = await fixture();
    await fc.assert(
      fc.asyncProperty(field, field, async (email, password) => {
        const status = await probe(f, 'POST', '/api/v1/auth/login', undefined, JSON.stringify({ email, password }), 'application/json');
        expect([400, 401]).toContain(status);
      }),
      { numRuns: NUM_RUNS },
    );
  }, TIMEOUT_MS);
});

describe('passwords that are not well-formed Unicode', () => {
  // Bun.password turns every lone surrogate into U+FFFD before hashing, so a password holding one
  // (sendable as a JSON escape) would be matched by any other lone surrogate or by U+FFFD at the same
  // place. Such passwords are refused at registration and never match at login.
  it('are refused, so two different ones can never match each other', async () => {
    const t = makeTestApp();
    const email = 'surrogate@example.com';
    const res = await t.request('POST', '/api/v1/auth/register', { json: { email, password: 'correct-zebra-\ud800' } });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toBe('weak_password');
    await t.register(email, 'correct-zebra-\ufffd');
    const other = await t.request('POST', '/api/v1/auth/login', { json: { email, password: 'correct-zebra-\udc00' } });
    expect(other.status).toBe(401);
    const right = await t.request('POST', '/api/v1/auth/login', { json: { email, password: 'correct-zebra-\ufffd' } });
    expect(right.status).toBe(200);
  });
});
