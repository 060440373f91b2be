/** Rate limiting through the app: classes, keys, headers, 429 answers, login back-off. */
import { describe, expect, it } from 'bun:test';
import { GOOD_PASSWORD, makeTestApp, uniqueEmail, type TestApp } from '../helpers/app.ts';

const LOGIN = '/api/v1/auth/login';
const ME = '/api/v1/users/me';

/** A failed login for a fresh email each time, so the per-account back-off never interferes. */
const badLogin = (t: TestApp, peer: string, headers: Record<string, string> = {}) =>
  t.request('POST', LOGIN, { json: { email: uniqueEmail(), password: 'wrong-password-1' }, peer, headers });

describe('the auth class (register, login)', () => {
  it('refuses the 11th request in a minute from one address, not the 1st from another', async () => {
    const t = makeTestApp();
    for (let i = 0; i < 10; i++) expect((await badLogin(t, '203.0.113.5')).status).toBe(401);
    const refused = await badLogin(t, '203.0.113.5');
    expect(refused.status).toBe(429);
    expect(await refused.json()).toEqual({ error: 'rate_limited', message: 'Too many requests, please try again later' });
    expect((await badLogin(t, '203.0.113.6')).status).toBe(401);
  });

  it('says honestly when to come back: Retry-After seconds later a request passes', async () => {
    const t = makeTestApp();
    for (let i = 0; i < 10; i++) await badLogin(t, '203.0.113.5');
    const refused = await badLogin(t, '203.0.113.5');
    const retryAfter = Number(refused.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBe(6); // 10 per 60 s: one token every 6 s
    t.clock.advance(retryAfter * 1000 - 1000);
    expect((await badLogin(t, '203.0.113.5')).status).toBe(429);
    t.clock.advance(1000);
    expect((await badLogin(t, '203.0.113.5')).status).toBe(401);
  });

  it('admits exactly the bucket’s worth of 50 parallel requests', async () => {
    const t = makeTestApp();
    const answers = await Promise.all(Array.from({ length: 50 }, () => badLogin(t, '203.0.113.9')));
    const counts = answers.reduce<Record<number, number>>((acc, r) => ({ ...acc, [r.status]: (acc[r.status] ?? 0) + 1 }), {});
    expect(counts).toEqual({ 401: 10, 429: 40 });
  });

  it('counts registrations and logins in one bucket, failed ones included', async () => {
    const t = makeTestApp();
    for (let i = 0; i < 5; i++) await t.request('POST', '/api/v1/auth/register', { json: { email: 'bad' }, peer: '203.0.113.7' });
    for (let i = 0; i < 5; i++) await badLogin(t, '203.0.113.7');
    expect((await t.request('POST', '/api/v1/auth/register', { json: { email: uniqueEmail(), password: GOOD_PASSWORD }, peer: '203.0.113.7' })).status).toBe(429);
  });

  it('answers 429 before looking at the body', async () => {
    const t = makeTestApp();
    for (let i = 0; i < 10; i++) await badLogin(t, '203.0.113.8');
    const res = await t.request('POST', LOGIN, { body: 'garbage', headers: { 'content-type': 'text/plain' }, peer: '203.0.113.8' });
    expect(res.status).toBe(429);
  });

  it('is off when EXPOSE_RATE_LIMIT_AUTH=0, headers included', async () => {
    const t = makeTestApp({ EXPOSE_RATE_LIMIT_AUTH: '0' });
    for (let i = 0; i < 30; i++) {
      const res = await badLogin(t, '203.0.113.5');
      expect(res.status).toBe(401);
      expect(res.headers.get('ratelimit')).toBeNull();
    }
  });
});

describe('client addresses', () => {
  it('ignores X-Forwarded-For from a peer that is not a trusted proxy', async () => {
    const t = makeTestApp();
    for (let i = 0; i < 10; i++) await badLogin(t, '203.0.113.5', { 'x-forwarded-for': `198.51.100.${i}` });
    expect((await badLogin(t, '203.0.113.5', { 'x-forwarded-for': '198.51.100.200' })).status).toBe(429);
  });

  it('believes X-Forwarded-For from a trusted proxy, walking past trusted hops', async () => {
    const t = makeTestApp({ EXPOSE_TRUSTED_PROXIES: '10.0.0.0/8' });
    for (let i = 0; i < 10; i++) await badLogin(t, '10.0.0.1', { 'x-forwarded-for': '198.51.100.1, 10.0.0.2' });
    expect((await badLogin(t, '10.0.0.1', { 'x-forwarded-for': '198.51.100.1, 10.0.0.2' })).status).toBe(429);
    // Another client behind the same proxy has its own bucket; a spoofed left-most entry changes nothing.
    expect((await badLogin(t, '10.0.0.1', { 'x-forwarded-for': '198.51.100.1, 198.51.100.2' })).status).toBe(401);
  });

  it('groups IPv6 clients by /64', async () => {
    const t = makeTestApp();
    for (let i = 0; i < 10; i++) await badLogin(t, `2001:db8:1:2::${i + 1}`);
    expect((await badLogin(t, '2001:db8:1:2:ffff:ffff:ffff:ffff')).status).toBe(429);
    expect((await badLogin(t, '2001:db8:1:3::1')).status).toBe(401);
  });

  it('folds IPv4-mapped IPv6 into IPv4', async () => {
    const t = makeTestApp();
    for (let i = 0; i < 10; i++) await badLogin(t, '::ffff:203.0.113.5');
    expect((await badLogin(t, '203.0.113.5')).status).toBe(429);
  });
});

describe('the general class', () => {
  it('limits per account with a valid credential, whatever the address, and answers 429 not 401', async () => {
    const t = makeTestApp({ EXPOSE_RATE_LIMIT_API: '5' });
    const { token, key } = await t.registerWithKey();
    // registerWithKey used one token (POST api-keys).
    for (let i = 0; i < 4; i++) expect((await t.request('GET', ME, { token: i % 2 ? key : token, peer: `192.0.2.${i}` })).status).toBe(200);
    const refused = await t.request('GET', ME, { token, peer: '192.0.2.99' });
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBe('12');
    // Another account is not affected.
    const other = await t.register();
    expect((await t.request('GET', ME, { token: other.token })).status).toBe(200);
  });

  it('counts bad credentials against the address and still answers 401', async () => {
    const t = makeTestApp({ EXPOSE_RATE_LIMIT_API: '3' });
    const answers = [];
    for (let i = 0; i < 5; i++) answers.push(await t.request('GET', ME, { token: 'garbage', peer: '192.0.2.50' }));
    expect(answers.map((r) => r.status)).toEqual([401, 401, 401, 401, 401]);
    expect(answers[4]!.headers.get('ratelimit')).toBe('"general";r=0;t=60');
  });

  it('limits unknown /api/v1 routes per address: 429 before 404', async () => {
    const t = makeTestApp({ EXPOSE_RATE_LIMIT_API: '2' });
    expect((await t.request('GET', '/api/v1/nope', { peer: '192.0.2.60' })).status).toBe(404);
    expect((await t.request('GET', '/api/v1/nope', { peer: '192.0.2.60' })).status).toBe(404);
    expect((await t.request('GET', '/api/v1/nope', { peer: '192.0.2.60' })).status).toBe(429);
  });

  it('answers 429 before 403 when a key is over its limit on a JWT-only route', async () => {
    const t = makeTestApp({ EXPOSE_RATE_LIMIT_API: '1' });
    const { key } = await t.registerWithKey();
    const res = await t.request('POST', '/api/v1/api-keys', { token: key, json: { name: 'x' } });
    expect(res.status).toBe(429);
  });
});

describe('RateLimit headers', () => {
  it('carry the policy and the remaining tokens on every answer of a limited route, in draft-10 form', async () => {
    const t = makeTestApp();
    const { token } = await t.register();
    const ok = await t.request('GET', ME, { token });
    expect(ok.headers.get('ratelimit-policy')).toBe('"general";q=100;w=60');
    expect(ok.headers.get('ratelimit')).toMatch(/^"general";r=99;t=1$/);
    const login = await badLogin(t, '203.0.113.77');
    expect(login.headers.get('ratelimit-policy')).toBe('"auth";q=10;w=60');
    expect(login.headers.get('ratelimit')).toBe('"auth";r=9;t=6');
    const missing = await t.request('DELETE', `/api/v1/api-keys/${crypto.randomUUID()}`, { token });
    expect(missing.status).toBe(404);
    expect(missing.headers.get('ratelimit')).toBe('"general";r=98;t=2');
  });

  it('are absent from exempt routes', async () => {
    const t = makeTestApp();
    for (const path of ['/health', '/docs', '/docs/json']) {
      const res = await t.request('GET', path);
      expect(res.status).toBe(200);
      expect(res.headers.get('ratelimit')).toBeNull();
      expect(res.headers.get('ratelimit-policy')).toBeNull();
    }
  });
});

describe('failed logins per account', () => {
  async function failLogin(t: TestApp, email: string, peer: string) {
    return t.request('POST', LOGIN, { json: { email, password: 'wrong-password-1' }, peer });
  }

  it('delays the account 1, 2, 4 s after the 5th, 6th, 7th failure in a row, from any address', async () => {
    const t = makeTestApp();
    const { user } = await t.register();
    for (let i = 0; i < 4; i++) expect((await failLogin(t, user.email, `203.0.113.${i}`)).status).toBe(401);
    expect((await failLogin(t, user.email, '203.0.113.10')).status).toBe(401); // 5th failure: locks for 1 s
    for (const [lock, peer] of [[1, 11], [2, 12], [4, 13]] as const) {
      const refused = await failLogin(t, user.email, `203.0.113.${peer}`);
      expect(refused.status).toBe(429);
      expect(refused.headers.get('retry-after')).toBe(String(lock));
      // Even the right password waits: the delay is per account, not per guess.
      expect((await t.request('POST', LOGIN, { json: { email: user.email, password: GOOD_PASSWORD }, peer: '198.51.100.1' })).status).toBe(429);
      t.clock.advance(lock * 1000);
      expect((await failLogin(t, user.email, `203.0.113.${peer + 10}`)).status).toBe(401);
    }
  });

  it('resets after a successful login and never locks for good', async () => {
    const t = makeTestApp({ EXPOSE_RATE_LIMIT_AUTH: '1000' });
    const { user } = await t.register();
    for (let i = 0; i < 5; i++) await failLogin(t, user.email, '203.0.113.1');
    t.clock.advance(1000);
    expect((await t.request('POST', LOGIN, { json: { email: user.email, password: GOOD_PASSWORD } })).status).toBe(200);
    for (let i = 0; i < 4; i++) expect((await failLogin(t, user.email, '203.0.113.1')).status).toBe(401);
    for (let n = 5; n < 40; n++) {
      await failLogin(t, user.email, '203.0.113.1');
      t.clock.advance(15 * 60 * 1000);
    }
    expect((await t.request('POST', LOGIN, { json: { email: user.email, password: GOOD_PASSWORD } })).status).toBe(200);
  });

  it('is off when EXPOSE_RATE_LIMIT_AUTH=0', async () => {
    const t = makeTestApp({ EXPOSE_RATE_LIMIT_AUTH: '0' });
    const { user } = await t.register();
    for (let i = 0; i < 10; i++) expect((await failLogin(t, user.email, '203.0.113.1')).status).toBe(401);
    expect((await t.request('POST', LOGIN, { json: { email: user.email, password: GOOD_PASSWORD } })).status).toBe(200);
  });
});
