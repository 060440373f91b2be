/** GET/POST /api/v1/api-keys and DELETE /api/v1/api-keys/{id}. */
import { describe, expect, it } from 'bun:test';
import { makeTestApp } from '../helpers/app.ts';
import { snapshot } from '../helpers/attacks.ts';

const KEYS = '/api/v1/api-keys';
const RFC3339_SECONDS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;

type KeyView = { id: string; name: string; key_prefix: string; created_at: string; last_used_at: string | null };

async function createKey(t: ReturnType<typeof makeTestApp>, token: string, name: string) {
  const res = await t.request('POST', KEYS, { token, json: { name } });
  return { res, body: (await res.json()) as { api_key: KeyView; key: string } };
}

describe('POST /api/v1/api-keys', () => {
  it('answers 201 with the key view and the full key, once, with no-store', async () => {
    const t = makeTestApp();
    const { token } = await t.register();
    const { res, body } = await createKey(t, token, '  laptop tunnel  ');
    expect(res.status).toBe(201);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(Object.keys(body).sort()).toEqual(['api_key', 'key']);
    expect(Object.keys(body.api_key).sort()).toEqual(['created_at', 'id', 'key_prefix', 'last_used_at', 'name']);
    expect(body.key).toMatch(/^exp_k1_[0-9a-f]{48}$/);
    expect(body.api_key.key_prefix).toBe(body.key.slice(0, 13));
    expect(body.api_key.name).toBe('laptop tunnel');
    expect(body.api_key.last_used_at).toBeNull();
    expect(body.api_key.created_at).toMatch(RFC3339_SECONDS);
    const stored = t.db.sqlite.query('SELECT * FROM api_keys').all() as Array<Record<string, unknown>>;
    expect(JSON.stringify(stored)).not.toContain(body.key);
    expect(stored[0]!.key_hash).toBe(new Bun.CryptoHasher('sha256').update(body.key).digest('hex'));
  });

  it.each([
    ['an empty name', ''],
    ['a name of spaces', '   '],
    ['a name over 100 characters', 'n'.repeat(101)],
  ])('answers 400 validation_error to %s', async (_n, name) => {
    const t = makeTestApp();
    const { token } = await t.register();
    const before = snapshot(t);
    const { res, body } = await createKey(t, token, name);
    expect(res.status).toBe(400);
    expect((body as unknown as { error: string }).error).toBe('validation_error');
    expect(snapshot(t)).toBe(before);
  });

  it('accepts a name of exactly 100 characters', async () => {
    const t = makeTestApp();
    const { token } = await t.register();
    expect((await createKey(t, token, 'n'.repeat(100))).res.status).toBe(201);
  });

  it('answers 409 too_many_api_keys at the configured limit, even to parallel requests', async () => {
    const t = makeTestApp({ EXPOSE_MAX_API_KEYS: '3', EXPOSE_RATE_LIMIT_API: '0' });
    const { token } = await t.register();
    const answers = await Promise.all([1, 2, 3, 4, 5].map((i) => createKey(t, token, `k${i}`)));
    expect(answers.map((a) => a.res.status).sort()).toEqual([201, 201, 201, 409, 409]);
    const refused = answers.find((a) => a.res.status === 409)!.body as unknown;
    expect(refused).toEqual({ error: 'too_many_api_keys', message: 'API key limit reached' });
    // A revoked key frees its place.
    const id = answers.find((a) => a.res.status === 201)!.body.api_key.id;
    expect((await t.request('DELETE', `${KEYS}/${id}`, { token })).status).toBe(204);
    expect((await createKey(t, token, 'again')).res.status).toBe(201);
  });

  it('answers 403 to an API key and creates nothing', async () => {
    const t = makeTestApp();
    const { key } = await t.registerWithKey();
    const res = await t.request('POST', KEYS, { token: key, json: { name: 'x' } });
    expect(res.status).toBe(403);
    expect(t.db.sqlite.query('SELECT name FROM api_keys').all()).toEqual([{ name: 'test key' }]);
  });
});

describe('GET /api/v1/api-keys', () => {
  it("lists only the caller's keys, newest first, never the key or its hash", async () => {
    const t = makeTestApp();
    const { token } = await t.register();
    const other = await t.registerWithKey();
    const first = await createKey(t, token, 'first');
    t.clock.advance(1000);
    const second = await createKey(t, token, 'second');
    const third = await createKey(t, token, 'third'); // same second as "second": still newest first
    const res = await t.request('GET', KEYS, { token });
    expect(res.status).toBe(200);
    const list = (await res.json()) as KeyView[];
    expect(list.map((k) => k.name)).toEqual(['third', 'second', 'first']);
    const text = JSON.stringify(list);
    for (const created of [first, second, third]) expect(text).not.toContain(created.body.key);
    expect(text).not.toContain('hash');
    expect(text).not.toContain(other.keyId);
    for (const item of list) expect(Object.keys(item).sort()).toEqual(['created_at', 'id', 'key_prefix', 'last_used_at', 'name']);
  });

  it('answers a bare empty array to a new account', async () => {
    const t = makeTestApp();
    const { token } = await t.register();
    expect(await (await t.request('GET', KEYS, { token })).json()).toEqual([]);
  });

  it('shows last_used_at from the first use, written at most once a minute', async () => {
    const t = makeTestApp();
    const { token, key } = await t.registerWithKey();
    const lastUsed = async () => ((await (await t.request('GET', KEYS, { token })).json()) as KeyView[])[0]!.last_used_at;
    expect(await lastUsed()).toBeNull();
    const firstUse = new Date(Math.floor(t.clock.now() / 1000) * 1000).toISOString().replace('.000Z', 'Z');
    expect((await t.request('GET', '/api/v1/users/me', { token: key })).status).toBe(200);
    expect(await lastUsed()).toBe(firstUse);
    t.clock.advance(30_000);
    await t.request('GET', '/api/v1/users/me', { token: key });
    expect(await lastUsed()).toBe(firstUse);
    t.clock.advance(31_000);
    await t.request('GET', '/api/v1/users/me', { token: key });
    expect(await lastUsed()).not.toBe(firstUse);
  });

  it('is readable with an API key', async () => {
    const t = makeTestApp();
    const { key, keyId } = await t.registerWithKey();
    const res = await t.request('GET', KEYS, { token: key });
    expect(res.status).toBe(200);
    expect(((await res.json()) as KeyView[])[0]!.id).toBe(keyId);
  });
});

describe('DELETE /api/v1/api-keys/{id}', () => {
  it('answers 204 with an empty body; the key is gone from lists and refused from the next request', async () => {
    const t = makeTestApp();
    const { token, key, keyId } = await t.registerWithKey();
    const res = await t.request('DELETE', `${KEYS}/${keyId}`, { token });
    expect(res.status).toBe(204);
    expect(await res.text()).toBe('');
    expect(await (await t.request('GET', KEYS, { token })).json()).toEqual([]);
    expect((await t.request('GET', '/api/v1/users/me', { token: key })).status).toBe(401);
  });

  it.each([
    ['another user’s key', async (t: ReturnType<typeof makeTestApp>) => (await t.registerWithKey()).keyId],
    ['an unknown id', async () => crypto.randomUUID()],
    ['a malformed id', async () => 'not-a-uuid'],
    ['an SQL-looking id', async () => "1' OR '1'='1"],
  ])('answers 404 not_found to %s and deletes nothing', async (_n, idOf) => {
    const t = makeTestApp();
    const { token } = await t.registerWithKey();
    const id = await idOf(t);
    const before = snapshot(t);
    const res = await t.request('DELETE', `${KEYS}/${encodeURIComponent(id)}`, { token });
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: 'not_found', message: 'API key not found' });
    expect(snapshot(t)).toBe(before);
  });

  it('answers 404 to a second delete of the same key', async () => {
    const t = makeTestApp();
    const { token, keyId } = await t.registerWithKey();
    await t.request('DELETE', `${KEYS}/${keyId}`, { token });
    expect((await t.request('DELETE', `${KEYS}/${keyId}`, { token })).status).toBe(404);
  });

  it('answers 403 to an API key, even for its own id', async () => {
    const t = makeTestApp();
    const { key, keyId } = await t.registerWithKey();
    const res = await t.request('DELETE', `${KEYS}/${keyId}`, { token: key });
    expect(res.status).toBe(403);
    expect((await t.request('GET', '/api/v1/users/me', { token: key })).status).toBe(200);
  });
});
