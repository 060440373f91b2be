/** GET /health, unknown routes, and the envelope on everything. */
import { describe, expect, it } from 'bun:test';
import { makeTestApp } from '../helpers/app.ts';

describe('GET /health', () => {
  it('answers 200 {"status":"ok"} without rate-limit headers', async () => {
    const t = makeTestApp();
    const res = await t.request('GET', '/health');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ok' });
    expect(res.headers.get('ratelimit')).toBeNull();
    expect(res.headers.get('ratelimit-policy')).toBeNull();
  });

  it('answers 503 unavailable once the database stops answering', async () => {
    const t = makeTestApp();
    t.db.sqlite.close();
    const res = await t.request('GET', '/health');
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: string }).error).toBe('unavailable');
  });
});

describe('unknown routes and methods', () => {
  it.each([
    ['GET', '/nope'],
    ['GET', '/api/v1/nope'],
    ['PATCH', '/api/v1/users/me'],
    ['DELETE', '/api/v1/auth/login'],
    ['GET', '/api/v2/users/me'],
  ])('answer %s %s with 404 in the envelope', async (method, path) => {
    const t = makeTestApp();
    const res = await t.request(method, path);
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: 'not_found', message: 'Not found' });
    expect(res.headers.get('content-type')).toContain('application/json');
  });
});

describe('unexpected errors', () => {
  it('answer 500 internal_error with no detail, and log the detail', async () => {
    const t = makeTestApp();
    const { token } = await t.register();
    t.db.sqlite.run('DROP TABLE api_keys');
    const res = await t.request('GET', '/api/v1/api-keys', { token });
    expect(res.status).toBe(500);
    // Exactly the envelope: no table name, no stack trace, no internal message.
    expect(await res.text()).toBe('{"error":"internal_error","message":"Internal server error"}');
    expect(t.logs.some((line) => line.includes('no such table: api_keys'))).toBe(true);
  });
});
