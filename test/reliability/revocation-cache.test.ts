/**
 * The credential caches (src/db/change-watch.ts) never outlive a revocation: a credential that was
 * just used, and so is cached, is refused on the very next request after logout, a password change,
 * a key deletion, a deleted account, or a write by another process (the operator CLI).
 */
import { Database } from 'bun:sqlite';
import { afterAll, describe, expect, it } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EXTERNAL_CHECK_INTERVAL_MS } from '../../src/db/change-watch.ts';
import { openDb } from '../../src/db/client.ts';
import { migrate } from '../../src/db/migrate.ts';
import { GOOD_PASSWORD, makeTestApp, type TestApp } from '../helpers/app.ts';

const dir = mkdtempSync(join(tmpdir(), 'expose-cache-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function status(t: TestApp, credential: string): Promise<number> {
  return (await t.request('GET', '/api/v1/users/me', { token: credential })).status;
}

/** Uses the credential enough times that it is certainly cached. */
async function warm(t: TestApp, ...credentials: string[]): Promise<void> {
  for (const credential of credentials) for (let i = 0; i < 3; i++) expect(await status(t, credential)).toBe(200);
}

describe('credential caches', () => {
  it('refuse a cached JWT on the request after its logout', async () => {
    const t = makeTestApp();
    const { token } = await t.register();
    await warm(t, token);
    expect((await t.request('POST', '/api/v1/auth/logout', { token })).status).toBe(204);
    expect(await status(t, token)).toBe(401);
  });

  it('refuse every other cached session after a password change, and keep the one that made it', async () => {
    const t = makeTestApp();
    const { token: first, user } = await t.register();
    const login = await t.request('POST', '/api/v1/auth/login', { json: { email: user.email, password: GOOD_PASSWORD } });
    const second = ((await login.json()) as { token: string }).token;
    await warm(t, first, second);
    const res = await t.request('PUT', '/api/v1/users/me/password', {
      token: second,
      json: { current_password: GOOD_PASSWORD, new_password: 'another-fine-zebra-77' },
    });
    expect(res.status).toBe(200);
    expect(await status(t, first)).toBe(401);
    expect(await status(t, second)).toBe(200);
  });

  it('refuse a cached API key on the request after its deletion, and keep the owner\'s other key', async () => {
    const t = makeTestApp();
    const { token, key, keyId } = await t.registerWithKey();
    const other = ((await (await t.request('POST', '/api/v1/api-keys', { token, json: { name: 'other' } })).json()) as { key: string }).key;
    await warm(t, key, other);
    expect((await t.request('DELETE', `/api/v1/api-keys/${keyId}`, { token })).status).toBe(204);
    expect(await status(t, key)).toBe(401);
    expect(await status(t, other)).toBe(200);
  });

  it('refuse cached credentials of an account deleted through the same connection', async () => {
    const t = makeTestApp();
    const { token, key, userId } = await t.registerWithKey();
    await warm(t, token, key);
    t.db.sqlite.run('DELETE FROM users WHERE id = ?', [userId]);
    expect(await status(t, token)).toBe(401);
    expect(await status(t, key)).toBe(401);
  });

  it('refuse cached credentials revoked by another process (another connection to the file)', async () => {
    const path = join(dir, 'external.db');
    const handle = openDb(path);
    migrate(handle.db);
    const t = makeTestApp({}, { db: handle });
    const { token, key } = await t.registerWithKey();
    await warm(t, token, key);
    // What `expose-server user passwd` does from its own process: end every session; and a key removed by hand.
    const operator = new Database(path);
    operator.run('DELETE FROM sessions');
    operator.run('DELETE FROM api_keys');
    operator.close();
    // Commits by other connections are looked for at most every EXTERNAL_CHECK_INTERVAL_MS.
    await Bun.sleep(EXTERNAL_CHECK_INTERVAL_MS + 1);
    expect(await status(t, token)).toBe(401);
    expect(await status(t, key)).toBe(401);
    handle.sqlite.close();
  });

  it('still record last_used_at for a cached key: the first use at once, then at most once a minute', async () => {
    const t = makeTestApp();
    const { token, key } = await t.registerWithKey();
    const lastUsed = async () => ((await (await t.request('GET', '/api/v1/api-keys', { token })).json()) as Array<{ last_used_at: string | null }>)[0]!.last_used_at;
    expect(await lastUsed()).toBeNull();
    await warm(t, key);
    const first = await lastUsed();
    expect(first).not.toBeNull();
    t.clock.advance(30_000);
    await warm(t, key);
    expect(await lastUsed()).toBe(first);
    t.clock.advance(31_000);
    await warm(t, key);
    const later = await lastUsed();
    expect(later).not.toBe(first);
    expect(Date.parse(later!) - Date.parse(first!)).toBe(61_000);
  });

  it('serve a changed account view after a write, not the cached one', async () => {
    const t = makeTestApp();
    const { token, user } = await t.register();
    await warm(t, token);
    t.db.sqlite.run("UPDATE users SET email = 'renamed@example.com' WHERE id = ?", [user.id]);
    const me = (await (await t.request('GET', '/api/v1/users/me', { token })).json()) as { email: string };
    expect(me.email).toBe('renamed@example.com');
  });
});
