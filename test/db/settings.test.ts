/** The generated JWT secret and the embedded migrations. */
import { describe, expect, it, spyOn } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Database } from 'bun:sqlite';
import { drizzle } from 'drizzle-orm/bun-sqlite';
import { SQLiteSyncDialect } from 'drizzle-orm/sqlite-core';
import { openDb, type Db } from '../../src/db/client.ts';
import * as schema from '../../src/db/schema.ts';
import { migrate, MIGRATION_COUNT, SchemaTooNewError } from '../../src/db/migrate.ts';
import { resolveJwtSecret } from '../../src/db/settings.ts';

describe('resolveJwtSecret', () => {
  it('uses the configured secret when there is one, and stores nothing', () => {
    const { db, sqlite } = openDb(':memory:');
    migrate(db);
    expect(resolveJwtSecret(db, 'x'.repeat(40))).toBe('x'.repeat(40));
    expect(sqlite.query("SELECT count(*) AS n FROM settings WHERE key = 'jwt_secret'").get()).toEqual({ n: 0 });
  });

  /** A database file in a fresh directory, first started (opened, migrated, secret generated) and closed. */
  function withStartedDatabase(run: (path: string, secret: string) => void): void {
    const dir = mkdtempSync(join(tmpdir(), 'expose-secret-'));
    try {
      const path = join(dir, 'expose.db');
      const first = openDb(path);
      migrate(first.db);
      const secret = resolveJwtSecret(first.db, undefined);
      expect(resolveJwtSecret(first.db, undefined)).toBe(secret);
      first.sqlite.close();
      run(path, secret);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  it('generates 32 random bytes once and keeps them across restarts', () => {
    withStartedDatabase((path, secret) => {
      expect(Buffer.from(secret, 'base64url').length).toBe(32);
      const second = openDb(path);
      migrate(second.db);
      expect(resolveJwtSecret(second.db, undefined)).toBe(secret);
      second.sqlite.close();
    });
  });

  it('only reads once the secret exists: a restart takes no write lock for it', () => {
    withStartedDatabase((path, secret) => {
      // A read-only connection refuses any write, even an insert that would be ignored.
      const readOnly = new Database(path, { readonly: true });
      try {
        expect(resolveJwtSecret(drizzle(readOnly, { schema }) as Db, undefined)).toBe(secret);
      } finally {
        readOnly.close();
      }
    });
  });
});

describe('migrate', () => {
  it('creates the schema once and is a no-op the second time', () => {
    const { db, sqlite } = openDb(':memory:');
    expect(MIGRATION_COUNT).toBeGreaterThan(0);
    migrate(db);
    migrate(db);
    const tables = (sqlite.query("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[]).map((r) => r.name);
    expect(tables).toEqual(expect.arrayContaining(['api_keys', 'sessions', 'settings', 'users']));
    expect(sqlite.query('SELECT count(*) AS n FROM __drizzle_migrations').get()).toEqual({ n: MIGRATION_COUNT });
  });

  it('runs the migrator only when the database does not record exactly the migrations of this build', () => {
    const runs = spyOn(SQLiteSyncDialect.prototype, 'migrate');
    try {
      const { db, sqlite } = openDb(':memory:');
      migrate(db);
      expect(runs).toHaveBeenCalledTimes(1);
      // Current: every later start skips it.
      migrate(db);
      migrate(db);
      expect(runs).toHaveBeenCalledTimes(1);
      // A record missing (an older migration not recorded): the migrator looks again.
      sqlite.run('DELETE FROM __drizzle_migrations WHERE created_at = (SELECT min(created_at) FROM __drizzle_migrations)');
      migrate(db);
      expect(runs).toHaveBeenCalledTimes(2);
      // The newest record older than this build's newest migration (a database one release behind):
      // the migrator runs, whatever re-applying that migration to this schema then does.
      const fresh = openDb(':memory:');
      migrate(fresh.db);
      fresh.sqlite.run('UPDATE __drizzle_migrations SET created_at = created_at - 1 WHERE created_at = (SELECT max(created_at) FROM __drizzle_migrations)');
      try {
        migrate(fresh.db);
      } catch (error) {
        expect(error).not.toBeInstanceOf(SchemaTooNewError);
      }
      expect(runs).toHaveBeenCalledTimes(4);
    } finally {
      runs.mockRestore();
    }
  });

  it('opens file databases in WAL mode with foreign keys on', () => {
    const dir = mkdtempSync(join(tmpdir(), 'expose-wal-'));
    try {
      const { sqlite } = openDb(join(dir, 'x.db'));
      expect(sqlite.query('PRAGMA journal_mode').get()).toEqual({ journal_mode: 'wal' });
      expect(sqlite.query('PRAGMA foreign_keys').get()).toEqual({ foreign_keys: 1 });
      sqlite.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
