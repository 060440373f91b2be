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
  ])('are on %s %s (%d)', async (method, path, status) => {
    const t = makeTestApp();
    const res = await t.request(method, path);
    expect(res.status).toBe(status);
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) expect(res.headers.get(name)).toBe(value);
  });

  it('let the docs page load only from this server', () => {
    const csp = SECURITY_HEADERS['content-security-policy']!;
    expect(csp).toContain("default-src 'self'");
    expect(csp).not.toMatch(/https?:/);
  });
});
