/** GET /api/v1/users/me and PUT /api/v1/users/me/password. */
import { describe, expect, it, spyOn } from 'bun:test';
import { GOOD_PASSWORD, makeTestApp } from '../helpers/app.ts';

const ME = '/api/v1/users/me';
const PASSWORD = '/api/v1/users/me/password';
const NEW_PASSWORD = 'fresh-giraffe-lamp-28';

describe('GET /api/v1/users/me', () => {
  it('answers the flat user to a JWT and to an API key', async () => {
    const t = makeTestApp();
    const { token, key, userId } = await t.registerWithKey('me@example.com');
    for (const credential of [token, key]) {
      const res = await t.request('GET', ME, { token: credential });
      expect(res.status).toBe(200);
      const body = (await res.json()) as Record<string, string>;
      expect(Object.keys(body).sort()).toEqual(['created_at', 'email', 'id']);
      expect(body.id).toBe(userId);
      expect(body.email).toBe('me@example.com');
    }
  });

  it('accepts the bearer scheme in any case', async () => {
    const t = makeTestApp();
    const { token } = await t.register();
    const res = await t.request('GET', ME, { headers: { authorization: `bEaReR ${token}` } });
    expect(res.status).toBe(200);
  });
});

describe('PUT /api/v1/users/me/password', () => {
  it('answers 200 with the contract message; the new password logs in, the old does not', async () => {
    const t = makeTestApp();
    const { token, user } = await t.register('pw@example.com');
    const res = await t.request('PUT', PASSWORD, { token, json: { current_password: GOOD_PASSWORD, new_password: NEW_PASSWORD } });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ message: 'Password updated successfully' });
    const login = (password: string) => t.request('POST', '/api/v1/auth/login', { json: { email: user.email, password } });
    expect((await login(GOOD_PASSWORD)).status).toBe(401);
    expect((await login(NEW_PASSWORD)).status).toBe(200);
  });

  it('keeps the session that made the change, ends every other one, and leaves API keys alone', async () => {
    const t = makeTestApp();
    const { token, key } = await t.registerWithKey('sessions@example.com');
    const second = ((await (await t.request('POST', '/api/v1/auth/login', { json: { email: 'sessions@example.com', password: GOOD_PASSWORD } })).json()) as { token: string }).token;
    const res = await t.request('PUT', PASSWORD, { token, json: { current_password: GOOD_PASSWORD, new_password: NEW_PASSWORD } });
    expect(res.status).toBe(200);
    expect((await t.request('GET', ME, { token })).status).toBe(200);
    expect((await t.request('GET', ME, { token: second })).status).toBe(401);
    expect((await t.request('GET', ME, { token: key })).status).toBe(200);
  });

  it('answers 400 invalid_password to a wrong current password and changes nothing', async () => {
    const t = makeTestApp();
    const { token } = await t.register();
    const before = t.db.sqlite.query('SELECT password_hash FROM users').get();
    const res = await t.request('PUT', PASSWORD, { token, json: { current_password: 'not-my-password-1', new_password: NEW_PASSWORD } });
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ error: 'invalid_password', message: 'Current password is incorrect' });
    expect(t.db.sqlite.query('SELECT password_hash FROM users').get()).toEqual(before);
  });

  it.each([
    ['the same as the current one', GOOD_PASSWORD, 'differ'],
    ['too short', 'short-1', 'at least 8'],
    ['common', 'iloveyou2', 'too common'],
  ])('answers 400 weak_password when the new password is %s', async (_name, newPassword, message) => {
    const t = makeTestApp();
    const { token } = await t.register();
    const res = await t.request('PUT', PASSWORD, { token, json: { current_password: GOOD_PASSWORD, new_password: newPassword } });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: string; message: string };
    expect(body.error).toBe('weak_password');
    expect(body.message).toContain(message);
  });

  it('answers weak_password before invalid_password when both apply', async () => {
    const t = makeTestApp();
    const { token } = await t.register();
    const res = await t.request('PUT', PASSWORD, { token, json: { current_password: 'wrong-current-1', new_password: 'short' } });
    expect(((await res.json()) as { error: string }).error).toBe('weak_password');
  });

  it('answers 400 validation_error to a missing field', async () => {
    const t = makeTestApp();
    const { token } = await t.register();
    const res = await t.request('PUT', PASSWORD, { token, json: { current_password: GOOD_PASSWORD } });
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ error: 'validation_error', message: 'new_password is required' });
  });

  it('answers 403 to an API key, before looking at the body', async () => {
    const t = makeTestApp();
    const { key } = await t.registerWithKey();
    const res = await t.request('PUT', PASSWORD, { token: key, body: 'not json', headers: { 'content-type': 'text/plain' } });
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: string }).error).toBe('forbidden');
  });

  it('answers 401 before 415 when the credential is bad and the body is too', async () => {
    const t = makeTestApp();
    const res = await t.request('PUT', PASSWORD, { token: 'nope', body: 'x', headers: { 'content-type': 'text/plain' } });
    expect(res.status).toBe(401);
  });

  it('does not decode the JSON body of a caller without a valid credential', async () => {
    const t = makeTestApp();
    const body = JSON.stringify({ current_password: 'never parsed before the guard', new_password: 'x'.repeat(40) });
    const parse = spyOn(JSON, 'parse');
    try {
      const res = await t.request('PUT', PASSWORD, { token: 'nope', body, headers: { 'content-type': 'application/json' } });
      expect(res.status).toBe(401);
      expect(parse.mock.calls.filter(([text]) => text === body)).toEqual([]);
    } finally {
      parse.mockRestore();
    }
  });
});

describe('UserService.setPassword (operator reset)', () => {
  it('sets the password and ends every session of the user, keys untouched', async () => {
    const t = makeTestApp();
    const { token, key, userId } = await t.registerWithKey('reset@example.com');
    await t.services.users.setPassword(userId, NEW_PASSWORD);
    expect((await t.request('GET', ME, { token })).status).toBe(401);
    expect((await t.request('GET', ME, { token: key })).status).toBe(200);
    const login = await t.request('POST', '/api/v1/auth/login', { json: { email: 'reset@example.com', password: NEW_PASSWORD } });
    expect(login.status).toBe(200);
  });
});
