/** Request bodies at the guard's body step: strict UTF-8, bounded nesting, then JSON. */
import { describe, expect, it } from 'bun:test';
import fc from 'fast-check';
import { exceedsJsonDepth, MAX_JSON_DEPTH } from '../../src/http/body.ts';
import { GOOD_PASSWORD, makeTestApp, uniqueEmail } from '../helpers/app.ts';

const REGISTER = '/api/v1/auth/register';
const LOGIN = '/api/v1/auth/login';

/** Nesting depth of a parsed JSON value, the slow obvious way. */
function depthOf(value: unknown): number {
  if (value === null || typeof value !== 'object') return 0;
  const children = Array.isArray(value) ? value : Object.values(value);
  return 1 + Math.max(0, ...children.map(depthOf));
}

const nestedObject = (depth: number) => '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);
const nestedArray = (depth: number) => '['.repeat(depth) + ']'.repeat(depth);

describe('exceedsJsonDepth', () => {
  it('agrees with the depth of the parsed value for any JSON', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 12 }), fc.integer({ min: 0, max: 14 }), (value, limit) => {
        const text = JSON.stringify(value);
        expect(exceedsJsonDepth(text, limit)).toBe(depthOf(value) > limit);
      }),
      { numRuns: 2000 },
    );
  });

  it('does not count brackets inside strings, escaped quotes included', () => {
    expect(exceedsJsonDepth(JSON.stringify({ a: '[[[[{{{{\\"[[[[' }), 1)).toBe(false);
    expect(exceedsJsonDepth(JSON.stringify(['\\', [[1]]]), 2)).toBe(true);
  });
});

describe('JSON bodies nested too deep', () => {
  const cases = [
    ['an object 10,000 deep', nestedObject(10_000)],
    ['an array 5,000 deep', nestedArray(5_000)],
    [`an array ${MAX_JSON_DEPTH} deep inside the body`, nestedArray(MAX_JSON_DEPTH)],
  ] as const;
  for (const [what, nested] of cases) {
    it(`answers 400 validation_error to ${what} in any field of any JSON route, and stores nothing`, async () => {
      const t = makeTestApp();
      const { token } = await t.register();
      const routes = [
        ['POST', REGISTER, undefined, (v: string) => `{"email":${v},"password":"${GOOD_PASSWORD}"}`],
        ['POST', REGISTER, undefined, (v: string) => `{"email":"${uniqueEmail()}","password":${v}}`],
        ['POST', LOGIN, undefined, (v: string) => `{"email":${v},"password":"x"}`],
        ['POST', '/api/v1/api-keys', token, (v: string) => `{"name":${v}}`],
        ['PUT', '/api/v1/users/me/password', token, (v: string) => `{"current_password":${v},"new_password":"${GOOD_PASSWORD}x"}`],
        ['PUT', '/api/v1/users/me/password', token, (v: string) => `{"current_password":"${GOOD_PASSWORD}","new_password":${v}}`],
      ] as const;
      const before = t.db.sqlite.query('SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM api_keys) AS n').get();
      for (const [method, path, bearer, body] of routes) {
        const res = await t.request(method, path, { body: body(nested), token: bearer, headers: { 'content-type': 'application/json' } });
        expect(res.status).toBe(400);
        expect(await res.json()).toEqual({ error: 'validation_error', message: `Request body nests arrays or objects deeper than ${MAX_JSON_DEPTH} levels` });
      }
      expect(t.db.sqlite.query('SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM api_keys) AS n').get()).toEqual(before);
      expect(t.logs.join('\n')).not.toContain('unhandled error');
    });
  }

  it('still accepts a body exactly at the limit, judged by the route schema as usual', async () => {
    const t = makeTestApp();
    const body = `{"email":"${uniqueEmail()}","password":"${GOOD_PASSWORD}","extra":${nestedArray(MAX_JSON_DEPTH - 1)}}`;
    const res = await t.request('POST', REGISTER, { body, headers: { 'content-type': 'application/json' } });
    expect(res.status).toBe(201);
  });
});

describe('bodies that are not valid UTF-8', () => {
  /** `{"email":"...","password":"<prefix><byte>"}` as raw bytes. */
  function credentialsWithByte(email: string, byte: number): Uint8Array {
    const head = new TextEncoder().encode(`{"email":"${email}","password":"${GOOD_PASSWORD}`);
    const tail = new TextEncoder().encode('"}');
    return new Uint8Array([...head, byte, ...tail]);
  }

  it('are refused with 400, so a password holding byte 0xff cannot log in as one holding 0xfe or U+FFFD', async () => {
    const t = makeTestApp();
    const email = uniqueEmail();
    const json = { 'content-type': 'application/json' };
    const refused = await t.request('POST', REGISTER, { body: credentialsWithByte(email, 0xff), headers: json });
    expect(refused.status).toBe(400);
    expect(await refused.json()).toEqual({ error: 'validation_error', message: 'Request body is not valid UTF-8' });
    expect(t.db.sqlite.query('SELECT count(*) AS n FROM users').get()).toEqual({ n: 0 });

    await t.register(email, `${GOOD_PASSWORD}\uFFFD`);
    for (const byte of [0xff, 0xfe, 0x80, 0xc0]) {
      const res = await t.request('POST', LOGIN, { body: credentialsWithByte(email, byte), headers: json });
      expect(res.status).toBe(400);
    }
    expect((await t.request('POST', LOGIN, { json: { email, password: `${GOOD_PASSWORD}\uFFFD` } })).status).toBe(200);
  });

  it('answer 415 first when the media type is wrong as well, as the contract orders the checks', async () => {
    const t = makeTestApp();
    const res = await t.request('POST', REGISTER, { body: new Uint8Array([0x7b, 0xff, 0x7d]), headers: { 'content-type': 'text/plain' } });
    expect(res.status).toBe(415);
  });
});
