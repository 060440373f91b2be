/**
 * Credentials never outlive their account, whatever removed or disabled it: the API, the CLI, or a
 * `sqlite3` shell with foreign keys off. And emails are one account per address in any Unicode form.
 */
import { afterEach, describe, expect, it } from 'bun:test';
import { Database } from 'bun:sqlite';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDb } from '../../src/db/client.ts';
import { migrate } from '../../src/db/migrate.ts';
import { normaliseStoredEmails } from '../../src/db/normalise-emails.ts';
import { EXTERNAL_CHECK_INTERVAL_MS } from '../../src/db/change-watch.ts';
import { GOOD_PASSWORD, makeTestApp, uniqueEmail } from '../helpers/app.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A test app on a database file, so a second connection (the "shell") can write beside it. */
function appOnFile() {
  const dir = mkdtempSync(join(tmpdir(), 'expose-lifecycle-'));
  dirs.push(dir);
  const path = join(dir, 'expose.db');
  const db = openDb(path);
  migrate(db.db);
  return { t: makeTestApp({}, { db }), path };
}

/** What an operator's `sqlite3 expose.db` is: a plain connection, foreign keys off (SQLite's default). */
function shell(path: string, statement: string, ...params: string[]): void {
  const sqlite = new Database(path);
  expect(sqlite.query('PRAGMA foreign_keys').get()).toEqual({ foreign_keys: 0 });
  sqlite.query(statement).run(...params);
  sqlite.close();
}

const seeExternalWrites = () => Bun.sleep(EXTERNAL_CHECK_INTERVAL_MS * 5);

describe('a user deleted from a sqlite3 shell with foreign keys off', () => {
  it("takes its sessions and keys with it: the key and the token answer 401, key creation 401 and never 500", async () => {
    const { t, path } = appOnFile();
    const { token, key, userId } = await t.registerWithKey();
    expect((await t.request('GET', '/api/v1/users/me', { token: key })).status).toBe(200);
    shell(path, 'DELETE FROM users WHERE id = ?', userId);
    await seeExternalWrites();
    expect((await t.request('GET', '/api/v1/users/me', { token: key })).status).toBe(401);
    expect((await t.request('GET', '/api/v1/api-keys', { token })).status).toBe(401);
    expect((await t.request('POST', '/api/v1/api-keys', { token, json: { name: 'after' } })).status).toBe(401);
    const left = t.services.users.get(userId);
    expect(left).toBeUndefined();
    const sqlite = new Database(path);
    expect(sqlite.query('SELECT (SELECT count(*) FROM sessions) + (SELECT count(*) FROM api_keys) AS n').get()).toEqual({ n: 0 });
    sqlite.close();
  });

  it('is refused even where rows were orphaned before the trigger existed', async () => {
    const { t, path } = appOnFile();
    const { token, key, userId } = await t.registerWithKey();
    // A database that lost its user before migration 0001: the rows are there, their user is not.
    shell(path, 'DROP TRIGGER users_delete_credentials');
    shell(path, 'DELETE FROM users WHERE id = ?', userId);
    await seeExternalWrites();
    expect((await t.request('GET', '/api/v1/users/me', { token: key })).status).toBe(401);
    expect((await t.request('GET', '/api/v1/users/me', { token })).status).toBe(401);
    expect((await t.request('POST', '/api/v1/api-keys', { token, json: { name: 'after' } })).status).toBe(401);
    expect(t.logs.join('\n')).not.toContain('unhandled error');
  });
});

describe('a disabled account', () => {
  it('cannot log in (403 with the right password, 401 with a wrong one), and its key and token answer 401 until enabled', async () => {
    const t = makeTestApp();
    const email = uniqueEmail();
    const { token } = await t.register(email);
    const keyRes = await t.request('POST', '/api/v1/api-keys', { token, json: { name: 'k' } });
    const { key } = (await keyRes.json()) as { key: string };
    t.db.sqlite.query('UPDATE users SET disabled_at = 1 WHERE email = ?').run(email);

    const right = await t.request('POST', '/api/v1/auth/login', { json: { email, password: GOOD_PASSWORD } });
    expect(right.status).toBe(403);
    expect(await right.json()).toEqual({ error: 'forbidden', message: "You don't have permission to access this resource" });
    expect((await t.request('POST', '/api/v1/auth/login', { json: { email, password: 'wrong-password-123' } })).status).toBe(401);
    expect((await t.request('GET', '/api/v1/users/me', { token: key })).status).toBe(401);
    expect((await t.request('GET', '/api/v1/users/me', { token })).status).toBe(401);

    t.db.sqlite.query('UPDATE users SET disabled_at = NULL WHERE email = ?').run(email);
    expect((await t.request('GET', '/api/v1/users/me', { token: key })).status).toBe(200);
    expect((await t.request('POST', '/api/v1/auth/login', { json: { email, password: GOOD_PASSWORD } })).status).toBe(200);
  });
});

describe('emails in different Unicode forms', () => {
  const composed = 'j\u00e4ger@example.com';
  const decomposed = 'ja\u0308ger@example.com';

  it('are one account: the second form answers 409, and either form logs in', async () => {
    const t = makeTestApp();
    const { user } = await t.register(composed);
    expect(user.email).toBe(composed);
    const again = await t.request('POST', '/api/v1/auth/register', { json: { email: decomposed, password: GOOD_PASSWORD } });
    expect(again.status).toBe(409);
    expect((await t.request('POST', '/api/v1/auth/login', { json: { email: decomposed, password: GOOD_PASSWORD } })).status).toBe(200);
  });

  it('stored before normalisation are rewritten once, unless that would take another account\'s address', () => {
    const t = makeTestApp();
    const insert = t.db.sqlite.query("INSERT INTO users (id, email, password_hash, created_at, updated_at) VALUES (?, ?, 'x', 0, 0)");
    insert.run('a', decomposed);
    insert.run('b', 'zo\u0308e@example.com');
    insert.run('c', 'zo\u0308e@example.org');
    insert.run('d', 'z\u00f6e@example.org');
    t.db.sqlite.query("DELETE FROM settings WHERE key = 'emails_nfc'").run();

    expect(normaliseStoredEmails(t.db.db)).toEqual({ rewritten: 2, conflicts: ['zo\u0308e@example.org'] });
    const emails = Object.fromEntries((t.db.sqlite.query('SELECT id, email FROM users').all() as { id: string; email: string }[]).map((r) => [r.id, r.email]));
    expect(emails).toEqual({ a: composed, b: 'z\u00f6e@example.com', c: 'zo\u0308e@example.org', d: 'z\u00f6e@example.org' });
    // Once done, never again: later starts only read the marker.
    t.db.sqlite.query('UPDATE users SET email = ? WHERE id = ?').run(decomposed, 'a');
    expect(normaliseStoredEmails(t.db.db)).toEqual({ rewritten: 0, conflicts: [] });
  });
});
