/** The services behind the operator's incident commands: delete, disable/enable, end sessions, revoke a key. */
import { describe, expect, it } from 'bun:test';
import { eq } from 'drizzle-orm';
import { apiKeys, sessions, users } from '../../src/db/schema.ts';
import { makeTestApp } from '../helpers/app.ts';

const sessionsOf = (t: ReturnType<typeof makeTestApp>, userId: string) => t.db.db.$count(sessions, eq(sessions.userId, userId));

describe('UserService.deleteAccount', () => {
  it('removes the account with its sessions and keys and says how many went', async () => {
    const t = makeTestApp();
    const account = await t.registerWithKey();
    const bystander = await t.registerWithKey();

    expect(t.services.users.deleteAccount(account.userId)).toEqual({ sessions: 1, apiKeys: 1 });
    expect(t.services.users.get(account.userId)).toBeUndefined();
    expect(await t.db.db.$count(apiKeys, eq(apiKeys.userId, account.userId))).toBe(0);
    expect((await t.request('GET', '/api/v1/users/me', { token: account.key })).status).toBe(401);
    expect((await t.request('GET', '/api/v1/users/me', { token: bystander.key })).status).toBe(200);
    expect(t.services.users.deleteAccount(account.userId)).toBeUndefined();
  });
});

describe('UserService.setDisabled', () => {
  it('sets disabled_at, ends every session, and clears it again on enable', async () => {
    const t = makeTestApp();
    const account = await t.registerWithKey();

    expect(t.services.users.setDisabled(account.userId, true)).toEqual({ changed: true, sessionsEnded: 1 });
    expect(t.services.users.get(account.userId)!.disabledAt).toBe(Math.floor(t.clock.now() / 1000));
    expect(await sessionsOf(t, account.userId)).toBe(0);
    expect(t.services.users.setDisabled(account.userId, true)).toEqual({ changed: false, sessionsEnded: 0 });

    expect(t.services.users.setDisabled(account.userId, false)).toEqual({ changed: true, sessionsEnded: 0 });
    expect(t.db.db.select({ d: users.disabledAt }).from(users).where(eq(users.id, account.userId)).get()).toEqual({ d: null });
    expect((await t.request('GET', '/api/v1/users/me', { token: account.key })).status).toBe(200);
    expect(t.services.users.setDisabled(crypto.randomUUID(), true)).toBeUndefined();
  });

  it('disables nothing when the sessions cannot be ended: both happen in one transaction or neither does', async () => {
    const t = makeTestApp();
    const account = await t.registerWithKey();
    t.db.sqlite.run("CREATE TRIGGER refuse_session_delete BEFORE DELETE ON sessions BEGIN SELECT RAISE(ABORT, 'sessions are stuck'); END");

    expect(() => t.services.users.setDisabled(account.userId, true)).toThrow('sessions are stuck');
    expect(t.services.users.get(account.userId)!.disabledAt).toBeNull();
    expect(await sessionsOf(t, account.userId)).toBe(1);
  });
});

describe('UserService.endSessions', () => {
  it('ends every session of one account and leaves its keys and other accounts alone', async () => {
    const t = makeTestApp();
    const account = await t.registerWithKey();
    const other = await t.register();
    expect(t.services.users.endSessions(account.userId)).toBe(1);
    expect((await t.request('GET', '/api/v1/users/me', { token: account.token })).status).toBe(401);
    expect((await t.request('GET', '/api/v1/users/me', { token: account.key })).status).toBe(200);
    expect((await t.request('GET', '/api/v1/users/me', { token: other.token })).status).toBe(200);
  });
});

describe('ApiKeyService.revokeById and idOfKey', () => {
  it('finds a key by the full key and revokes it by id, whoever owns it', async () => {
    const t = makeTestApp();
    const account = await t.registerWithKey();
    expect(t.services.apiKeys.idOfKey(account.key)).toBe(account.keyId);
    // One character changed (never to itself: a key ending in "0" made this test pass its own key).
    const last = account.key.at(-1) === '0' ? '1' : '0';
    expect(t.services.apiKeys.idOfKey(`${account.key.slice(0, -1)}${last}`)).toBeUndefined();

    expect(t.services.apiKeys.revokeById(account.keyId.toUpperCase())).toMatchObject({ userId: account.userId, name: 'test key' });
    expect((await t.request('GET', '/api/v1/users/me', { token: account.key })).status).toBe(401);
    expect(t.services.apiKeys.revokeById(account.keyId)).toBeUndefined();
    expect(t.services.apiKeys.revokeById('not-a-uuid')).toBeUndefined();
  });
});
