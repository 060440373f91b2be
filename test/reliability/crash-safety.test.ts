/**
 * Crash safety: a server child takes registrations and key creations, is killed with SIGKILL at a
 * random moment, and is started again on the same database. Every write whose answer the client
 * received must still be there, and the database must pass its integrity and foreign-key checks.
 * Several kills accumulate on one database, so later rounds also check the writes of earlier ones.
 */
import { Database } from 'bun:sqlite';
import { afterAll, describe, expect, it } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { seededRandom, startServer, type ServerChild } from './helpers.ts';

const ROUNDS = 5;
const CLIENTS = 4;
/**
 * The kill lands at a random moment this long after the round's first acknowledged write (waiting for
 * one first keeps a slow machine, where an argon2 hash at production cost takes a few hundred ms, from
 * killing an idle server), while the clients keep writing.
 */
const KILL_AFTER_FIRST_WRITE_MS = { min: 0, max: 1000 };
const FIRST_WRITE_TIMEOUT_MS = 20_000;
const PASSWORD = 'crash-test-password-not-common-7';

interface Account {
  email: string;
  token: string;
  /** Keys whose 201 the client received: id -> full key. */
  keys: Map<string, string>;
}

const dir = mkdtempSync(join(tmpdir(), 'expose-crash-'));
const dbPath = join(dir, 'crash.db');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** One client: register, then create keys, until the server goes away. Only acknowledged writes are recorded. */
async function client(server: ServerChild, round: number, id: number, acknowledged: Account[]): Promise<void> {
  for (let n = 0; ; n++) {
    const email = `r${round}-c${id}-n${n}@example.com`;
    let account: Account;
    try {
      const res = await fetch(`${server.url}/api/v1/auth/register`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email, password: PASSWORD }),
      });
      if (res.status !== 201) throw new Error(`register answered ${res.status}`);
      const body = (await res.json()) as { token: string };
      account = { email, token: body.token, keys: new Map() };
      acknowledged.push(account);
    } catch {
      return; // the server is gone; nothing after this was acknowledged
    }
    for (let k = 0; k < 3; k++) {
      try {
        const res = await fetch(`${server.url}/api/v1/api-keys`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${account.token}` },
          body: JSON.stringify({ name: `key ${k}` }),
        });
        if (res.status !== 201) throw new Error(`create key answered ${res.status}`);
        const body = (await res.json()) as { key: string; api_key: { id: string } };
        account.keys.set(body.api_key.id, body.key);
      } catch {
        return;
      }
    }
  }
}

/** Every acknowledged account and key is served by the restarted server. */
async function expectAllPresent(server: ServerChild, accounts: Account[]): Promise<void> {
  for (const account of accounts) {
    const me = await fetch(`${server.url}/api/v1/users/me`, { headers: { authorization: `Bearer ${account.token}` } });
    expect(me.status).toBe(200);
    expect(((await me.json()) as { email: string }).email).toBe(account.email);
    const list = await fetch(`${server.url}/api/v1/api-keys`, { headers: { authorization: `Bearer ${account.token}` } });
    expect(list.status).toBe(200);
    const ids = ((await list.json()) as Array<{ id: string }>).map((key) => key.id);
    for (const [keyId, key] of account.keys) {
      expect(ids).toContain(keyId);
      const byKey = await fetch(`${server.url}/api/v1/users/me`, { headers: { authorization: `Bearer ${key}` } });
      expect(byKey.status).toBe(200);
    }
  }
}

function expectSoundDatabase(): void {
  const db = new Database(dbPath, { readonly: true });
  try {
    expect(db.query('PRAGMA integrity_check').all()).toEqual([{ integrity_check: 'ok' }]);
    expect(db.query('PRAGMA foreign_key_check').all()).toEqual([]);
  } finally {
    db.close();
  }
}

describe('a server killed with SIGKILL mid-write', () => {
  it(
    `keeps every acknowledged registration and key across ${ROUNDS} kills, with a sound database`,
    async () => {
      const seed = Number(process.env.CRASH_SEED ?? Date.now() % 2 ** 31);
      const random = seededRandom(seed);
      console.log(`crash-safety seed ${seed} (replay with CRASH_SEED=${seed})`);
      // Rate limits off: this test is about durability, not about being throttled.
      const env = { EXPOSE_RATE_LIMIT_AUTH: '0', EXPOSE_RATE_LIMIT_API: '0' };
      const acknowledged: Account[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        const server = await startServer(dbPath, env);
        // What earlier rounds acknowledged must have survived their kill.
        await expectAllPresent(server, acknowledged);
        const before = acknowledged.length;
        const clients = Array.from({ length: CLIENTS }, (_, id) => client(server, round, id, acknowledged));
        const waitUntil = Date.now() + FIRST_WRITE_TIMEOUT_MS;
        while (acknowledged.length === before && Date.now() < waitUntil) await Bun.sleep(5);
        expect(acknowledged.length).toBeGreaterThan(before);
        await Bun.sleep(KILL_AFTER_FIRST_WRITE_MS.min + random() * (KILL_AFTER_FIRST_WRITE_MS.max - KILL_AFTER_FIRST_WRITE_MS.min));
        server.process.kill('SIGKILL');
        await server.process.exited;
        await Promise.all(clients);
        expectSoundDatabase();
      }
      const last = await startServer(dbPath, env);
      try {
        await expectAllPresent(last, acknowledged);
      } finally {
        last.process.kill('SIGKILL');
        await last.process.exited;
      }
      expectSoundDatabase();
      // Keys too were written and acknowledged, not only accounts.
      expect(acknowledged.some((account) => account.keys.size > 0)).toBe(true);
    },
    120_000,
  );
});
