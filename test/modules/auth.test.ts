/** POST /api/v1/auth/register, /login, /logout: happy paths and every contract error that applies. */
import { describe, expect, it } from 'bun:test';
import { GOOD_PASSWORD, makeTestApp, uniqueEmail } from '../helpers/app.ts';
import { snapshot } from '../helpers/attacks.ts';

const REGISTER = '/api/v1/auth/register';
const LOGIN = '/api/v1/auth/login';
const RFC3339_SECONDS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function claims(token: string) {
  const [header, payload] = token.split('.').slice(0, 2).map((part) => JSON.parse(Buffer.from(part, 'base64url').toString()));
  return { header, payload };
}

describe('POST /api/v1/auth/register', () => {
  it('answers 201 with the user and a 7-day HS256 token, and no-store', async () => {
    const t = makeTestApp();
    const res = await t.request('POST', REGISTER, { json: { email: '  Ada@Example.COM ', password: GOOD_PASSWORD } });
    expect(res.status).toBe(201);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const body = (await res.json()) as { user: Record<string, string>; token: string };
    expect(Object.keys(body).sort()).toEqual(['token', 'user']);
    expect(Object.keys(body.user).sort()).toEqual(['created_at', 'email', 'id']);
    expect(body.user.email).toBe('ada@example.com');
    expect(body.user.id).toMatch(UUID);
    expect(body.user.created_at).toMatch(RFC3339_SECONDS);
    const { header, payload } = claims(body.token);
    expect(header.alg).toBe('HS256');
    expect(payload.sub).toBe(body.user.id);
    expect(payload.jti).toMatch(UUID);
    expect(payload.exp - payload.iat).toBe(7 * 24 * 3600);
    expect(payload.iat).toBe(Math.floor(t.clock.now() / 1000));
  });

  it('stores an argon2id hash, never the password', async () => {
    const t = makeTestApp();
    await t.register('hash@example.com');
    const row = t.db.sqlite.query('SELECT password_hash FROM users').get() as { password_hash: string };
    expect(row.password_hash.startsWith('$argon2id$')).toBe(true);
    expect(row.password_hash).not.toContain(GOOD_PASSWORD);
  });

  it('answers 409 email_taken for an email that differs only in case and spaces', async () => {
    const t = makeTestApp();
    await t.register('taken@example.com');
    const res = await t.request('POST', REGISTER, { json: { email: ' TAKEN@example.com', password: GOOD_PASSWORD } });
    expect(res.status).toBe(409);
    expect(await res.json()).toEqual({ error: 'email_taken', message: 'An account with this email already exists' });
  });

  it('gives one 201 and one 409 to two registrations of the same email at once', async () => {
    const t = makeTestApp();
    const email = uniqueEmail();
    const answers = await Promise.all([1, 2, 3, 4].map(() => t.request('POST', REGISTER, { json: { email, password: GOOD_PASSWORD } })));
    const statuses = answers.map((r) => r.status).sort();
    expect(statuses).toEqual([201, 409, 409, 409]);
    expect((t.db.sqlite.query('SELECT count(*) AS n FROM users').get() as { n: number }).n).toBe(1);
  });

  it.each([
    ['a missing body', undefined, 'Request body is required'],
    ['an array', [], 'Request body must be a JSON object'],
    ['a missing password', { email: 'a@b.co' }, 'password is required'],
    ['a number for email', { email: 5, password: GOOD_PASSWORD }, 'email'],
    ['an implausible email', { email: 'not-an-email', password: GOOD_PASSWORD }, 'email must be a valid address'],
    ['an email without a dot in the domain', { email: 'a@localhost', password: GOOD_PASSWORD }, 'email must be a valid address'],
    ['an email over 254 characters', { email: `${'a'.repeat(60)}@${'b'.repeat(190)}.com`, password: GOOD_PASSWORD }, 'at most 254'],
  ])('answers 400 validation_error to %s', async (_name, json, message) => {
    const t = makeTestApp();
    const res = await t.request('POST', REGISTER, { json });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: string; message: string };
    expect(body.error).toBe('validation_error');
    expect(body.message).toContain(message);
    expect(snapshot(t)).toBe(snapshot(makeTestApp()));
  });

  it.each([
    ['7 characters', 'abcdefg', 'at least 8'],
    ['1025 characters', 'x'.repeat(1025), 'at most 1024'],
    ['a common password', 'password123', 'too common'],
    ['a common password in other case', 'PassWord123', 'too common'],
  ])('answers 400 weak_password to %s', async (_name, password, message) => {
    const t = makeTestApp();
    const res = await t.request('POST', REGISTER, { json: { email: uniqueEmail(), password } });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: string; message: string };
    expect(body.error).toBe('weak_password');
    expect(body.message).toContain(message);
    expect((t.db.sqlite.query('SELECT count(*) AS n FROM users').get() as { n: number }).n).toBe(0);
  });

  it('counts password length in characters, not bytes', async () => {
    const t = makeTestApp();
    // 8 characters, 32 bytes in UTF-8: long enough.
    expect((await t.request('POST', REGISTER, { json: { email: uniqueEmail(), password: '🦓🦓🦓🦓🦓🦓🦓🦓' } })).status).toBe(201);
    // 7 characters of 4 bytes each: too short, although 28 bytes.
    expect((await t.request('POST', REGISTER, { json: { email: uniqueEmail(), password: '🦓🦓🦓🦓🦓🦓🦓' } })).status).toBe(400);
  });

  it('accepts a 1024-character password and never truncates it', async () => {
    const t = makeTestApp();
    const long = 'q'.repeat(1023) + 'x';
    const email = uniqueEmail();
    expect((await t.request('POST', REGISTER, { json: { email, password: long } })).status).toBe(201);
    const truncated = await t.request('POST', LOGIN, { json: { email, password: 'q'.repeat(1023) + 'y' } });
    expect(truncated.status).toBe(401);
    expect((await t.request('POST', LOGIN, { json: { email, password: long } })).status).toBe(200);
  });

  it('honours a raised EXPOSE_PASSWORD_MIN_LENGTH', async () => {
    const t = makeTestApp({ EXPOSE_PASSWORD_MIN_LENGTH: '12' });
    const res = await t.request('POST', REGISTER, { json: { email: uniqueEmail(), password: 'zebra-42-xy' } });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { message: string }).message).toContain('at least 12');
  });

  it('answers 403 registration_closed when registration is closed', async () => {
    const t = makeTestApp({ EXPOSE_REGISTRATION: 'closed' });
    const res = await t.request('POST', REGISTER, { json: { email: uniqueEmail(), password: GOOD_PASSWORD } });
    expect(res.status).toBe(403);
    expect(await res.json()).toEqual({ error: 'registration_closed', message: 'Registration is closed on this server' });
  });

  it('answers 415 to a body that is not application/json', async () => {
    const t = makeTestApp();
    const res = await t.request('POST', REGISTER, { body: 'email=a@b.co', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(res.status).toBe(415);
    expect(((await res.json()) as { error: string }).error).toBe('unsupported_media_type');
  });

  it('accepts application/json with a charset parameter', async () => {
    const t = makeTestApp();
    const res = await t.request('POST', REGISTER, {
      body: JSON.stringify({ email: uniqueEmail(), password: GOOD_PASSWORD }),
      headers: { 'content-type': 'Application/JSON; charset=utf-8' },
    });
    expect(res.status).toBe(201);
  });

  it('answers 400 to malformed JSON', async () => {
    const t = makeTestApp();
    const res = await t.request('POST', REGISTER, { body: '{"email":', headers: { 'content-type': 'application/json' } });
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ error: 'validation_error', message: 'Request body is not valid JSON' });
  });

  it('answers 413 to a body over 64 KiB, declared or streamed', async () => {
    const t = makeTestApp();
    const big = JSON.stringify({ email: uniqueEmail(), password: 'x'.repeat(70_000) });
    const declared = await t.request('POST', REGISTER, { body: big, headers: { 'content-type': 'application/json' } });
    expect(declared.status).toBe(413);
    expect(((await declared.json()) as { error: string }).error).toBe('payload_too_large');
    const stream = new ReadableStream({
      start(controller) {
        controller.enqueue(new TextEncoder().encode(big));
        controller.close();
      },
    });
    const streamed = await t.request('POST', REGISTER, { body: stream, headers: { 'content-type': 'application/json' } });
    expect(streamed.status).toBe(413);
    expect((t.db.sqlite.query('SELECT count(*) AS n FROM users').get() as { n: number }).n).toBe(0);
  });

  it('accepts a body of exactly 64 KiB', async () => {
    const t = makeTestApp();
    const base = JSON.stringify({ email: uniqueEmail(), password: GOOD_PASSWORD, pad: '' });
    const body = base.replace('"pad":""', `"pad":"${'p'.repeat(64 * 1024 - base.length)}"`);
    expect(body.length).toBe(64 * 1024);
    const res = await t.request('POST', REGISTER, { body, headers: { 'content-type': 'application/json' } });
    expect(res.status).toBe(201);
  });
});

describe('POST /api/v1/auth/login', () => {
  it('answers 200 with the user and a new token, whatever the email case', async () => {
    const t = makeTestApp();
    const { user, token: first } = await t.register('login@example.com');
    const res = await t.request('POST', LOGIN, { json: { email: 'LOGIN@example.com ', password: GOOD_PASSWORD } });
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const body = (await res.json()) as { user: unknown; token: string };
    expect(body.user).toEqual(user);
    expect(body.token).not.toBe(first);
    expect((await t.request('GET', '/api/v1/users/me', { token: body.token })).status).toBe(200);
  });

  it('answers an unknown email and a wrong password with the same 401', async () => {
    const t = makeTestApp();
    await t.register('known@example.com');
    const wrong = await t.request('POST', LOGIN, { json: { email: 'known@example.com', password: 'wrong-password-9' } });
    const unknown = await t.request('POST', LOGIN, { json: { email: 'nobody@example.com', password: 'wrong-password-9' } });
    for (const res of [wrong, unknown]) {
      expect(res.status).toBe(401);
      expect(await res.json()).toEqual({ error: 'invalid_credentials', message: 'Invalid email or password' });
    }
    // Every 401 carries the challenge, as the contract says.
    expect(wrong.headers.get('www-authenticate')).toBe('Bearer');
    expect(unknown.headers.get('www-authenticate')).toBe('Bearer');
  });

  it('spends one argon2 verification on an unknown email, as on a wrong password', async () => {
    const t = makeTestApp();
    await t.register('known@example.com');
    const calls: string[] = [];
    const original = Bun.password.verify;
    Bun.password.verify = (async (password: string, hash: string) => {
      calls.push(hash.slice(0, 10));
      return original(password, hash);
    }) as typeof Bun.password.verify;
    try {
      await t.request('POST', LOGIN, { json: { email: 'known@example.com', password: 'wrong-password-9' } });
      await t.request('POST', LOGIN, { json: { email: 'nobody@example.com', password: 'wrong-password-9' } });
    } finally {
      Bun.password.verify = original;
    }
    expect(calls).toEqual(['$argon2id$', '$argon2id$']);
  });

  it('answers 400 to a malformed body before looking anything up', async () => {
    const t = makeTestApp();
    const res = await t.request('POST', LOGIN, { json: { email: 'a@b.co' } });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toBe('validation_error');
  });

  it('lets an account log in after registration was closed', async () => {
    const t = makeTestApp({ EXPOSE_REGISTRATION: 'closed' });
    await t.services.users.create('admin@example.com', GOOD_PASSWORD);
    const res = await t.request('POST', LOGIN, { json: { email: 'admin@example.com', password: GOOD_PASSWORD } });
    expect(res.status).toBe(200);
  });
});

describe('POST /api/v1/auth/logout', () => {
  it('answers 204 with an empty body and kills only that session', async () => {
    const t = makeTestApp();
    const { token } = await t.register('out@example.com');
    const other = ((await (await t.request('POST', LOGIN, { json: { email: 'out@example.com', password: GOOD_PASSWORD } })).json()) as { token: string }).token;
    const res = await t.request('POST', '/api/v1/auth/logout', { token });
    expect(res.status).toBe(204);
    expect(await res.text()).toBe('');
    expect((await t.request('GET', '/api/v1/users/me', { token })).status).toBe(401);
    expect((await t.request('GET', '/api/v1/users/me', { token: other })).status).toBe(200);
  });

  it('answers 403 to an API key', async () => {
    const t = makeTestApp();
    const { key, token } = await t.registerWithKey();
    const res = await t.request('POST', '/api/v1/auth/logout', { token: key });
    expect(res.status).toBe(403);
    expect(await res.json()).toEqual({ error: 'forbidden', message: "You don't have permission to access this resource" });
    expect((await t.request('GET', '/api/v1/users/me', { token })).status).toBe(200);
  });
});
