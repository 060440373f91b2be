/** Browser-facing safety headers on every kind of answer. */
import { describe, expect, it } from 'bun:test';
import { SECURITY_HEADERS } from '../../src/http/security-headers.ts';
import { makeTestApp } from '../helpers/app.ts';

describe('security headers', () => {
  it.each([
    ['GET', '/health', 200],
    ['GET', '/docs', 200],
    ['GET', '/docs/json', 200],
    ['GET', '/api/v1/users/me', 401],
    ['GET', '/nope', 404],
    ['POST', '/api/v1/auth/login', 400],
    ['GET', '/docs/assets/swagger-ui.css', 200],
  ])('are on %s %s (%d)', async (method, path, status) => {
    const t = makeTestApp();
    const res = await t.request(method, path);
    expect(res.status).toBe(status);
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) expect(res.headers.get(name)).toBe(value);
  });

  it('are on answers refused before any route runs (413) and on 429s', async () => {
    const t = makeTestApp({ EXPOSE_RATE_LIMIT_API: '1' });
    const tooLarge = await t.request('POST', '/api/v1/auth/login', { headers: { 'content-type': 'application/json', 'content-length': String(1024 * 1024) }, body: '{}' });
    expect(tooLarge.status).toBe(413);
    await t.request('GET', '/api/v1/nope');
    const limited = await t.request('GET', '/api/v1/nope');
    expect(limited.status).toBe(429);
    for (const res of [tooLarge, limited]) {
      for (const [name, value] of Object.entries(SECURITY_HEADERS)) expect(res.headers.get(name)).toBe(value);
    }
  });

  it('let the docs page load only from this server', () => {
    const csp = SECURITY_HEADERS['content-security-policy']!;
    expect(csp).toContain("default-src 'self'");
    expect(csp).not.toMatch(/https?:/);
  });
});
