/** ChangeWatch and GenerationCache: when a cached read must be dropped. */
import { Database } from 'bun:sqlite';
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChangeWatch, EXTERNAL_CHECK_INTERVAL_MS, GenerationCache, trackWrites } from '../../src/db/change-watch.ts';
import { openDb } from '../../src/db/client.ts';
import { migrate } from '../../src/db/migrate.ts';
import { users } from '../../src/db/schema.ts';
import { eq, sql } from 'drizzle-orm';

const dir = mkdtempSync(join(tmpdir(), 'expose-watch-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let tracked = false;
/** A WAL database with table t; its writes tracked (trackWrites, as openDb does) in the tracked runs. */
function fileDb(name: string): { path: string; db: Database } {
  const path = join(dir, `${tracked ? 'tracked-' : ''}${name}`);
  const db = new Database(path, { create: true });
  if (tracked) trackWrites(db);
  db.run('PRAGMA journal_mode = WAL');
  db.run('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)');
  return { path, db };
}

describe.each([false, true])('ChangeWatch (writes tracked: %p)', (trackedRun) => {
  beforeAll(() => {
    tracked = trackedRun;
  });

  it('keeps its generation while nothing is written', () => {
    const { db } = fileDb('quiet.db');
    const watch = ChangeWatch.of(db);
    const first = watch.generation();
    db.query('SELECT * FROM t').all();
    expect(watch.generation()).toBe(first);
  });

  it('moves at once on a write through the same connection, a no-op write excepted', () => {
    const { db } = fileDb('own.db');
    const watch = ChangeWatch.of(db);
    const first = watch.generation();
    db.run("INSERT INTO t (v) VALUES ('a')");
    const second = watch.generation();
    expect(second).not.toBe(first);
    db.run('DELETE FROM t WHERE id = 12345');
    expect(watch.generation()).toBe(second);
  });

  it('is one watch per connection, shared by every cache on it', () => {
    const { db } = fileDb('shared.db');
    expect(ChangeWatch.of(db)).toBe(ChangeWatch.of(db));
  });

  it('sees a commit by another connection once EXTERNAL_CHECK_INTERVAL_MS has passed, not before', () => {
    const { path, db } = fileDb('external.db');
    let nowMs = 1_000;
    const watch = ChangeWatch.of(db, () => nowMs);
    const first = watch.generation();
    const other = new Database(path);
    other.run("INSERT INTO t (v) VALUES ('from another process')");
    other.close();
    expect(watch.generation()).toBe(first);
    nowMs += EXTERNAL_CHECK_INTERVAL_MS;
    expect(watch.generation()).not.toBe(first);
  });

  it('lets the caller absorb its own mirrored write, but not one that raced ahead of it', () => {
    const { db } = fileDb('absorb.db');
    const watch = ChangeWatch.of(db);
    const seen = watch.generation();
    watch.ownWrite(seen, () => db.run("INSERT INTO t (v) VALUES ('mirrored')"));
    expect(watch.generation()).toBe(seen);
    db.run("INSERT INTO t (v) VALUES ('someone else')");
    watch.ownWrite(seen, () => db.run("INSERT INTO t (v) VALUES ('mirrored too')"));
    expect(watch.generation()).not.toBe(seen);
  });
});

describe('GenerationCache', () => {
  it('drops every entry when the generation moves', () => {
    const { db } = fileDb('cache.db');
    const cache = new GenerationCache<string, number>(ChangeWatch.of(db), 10);
    cache.sync();
    cache.set('a', 1);
    cache.sync();
    expect(cache.get('a')).toBe(1);
    db.run("INSERT INTO t (v) VALUES ('x')");
    cache.sync();
    expect(cache.get('a')).toBeUndefined();
  });

  it('never holds more than its cap', () => {
    const { db } = fileDb('cap.db');
    const cache = new GenerationCache<number, number>(ChangeWatch.of(db), 3);
    cache.sync();
    for (let i = 0; i < 10; i++) cache.set(i, i);
    expect(cache.size).toBeLessThanOrEqual(3);
    expect(cache.get(9)).toBe(9);
  });
});

/**
 * Counts the executions of the watch's `SELECT total_changes()`: the test's wrapper around prepare
 * sits over trackWrites' one, so it sees the statement the watch prepares.
 */
function countTotalReads(db: Database): { reads: number } {
  const counter = { reads: 0 };
  const prepare = db.prepare.bind(db);
  db.prepare = ((sql: string, ...rest: unknown[]) => {
    const statement = (prepare as (...a: unknown[]) => ReturnType<Database['prepare']>)(sql, ...rest);
    if (sql.includes('total_changes()')) {
      const get = statement.get.bind(statement);
      statement.get = ((...args: unknown[]) => {
        counter.reads++;
        return (get as (...a: unknown[]) => unknown)(...args);
      }) as typeof statement.get;
    }
    return statement;
  }) as Database['prepare'];
  return counter;
}

describe('trackWrites', () => {
  function trackedDb(name: string): Database {
    const db = new Database(join(dir, name), { create: true });
    trackWrites(db);
    db.run('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)');
    return db;
  }

  it('runs no statement for the generation while only reads run; an untracked connection runs one each time', () => {
    const db = trackedDb('no-statement.db');
    const counter = countTotalReads(db);
    const watch = ChangeWatch.of(db);
    const first = watch.generation();
    const before = counter.reads;
    for (let i = 0; i < 100; i++) {
      db.query('SELECT * FROM t').all();
      expect(watch.generation()).toBe(first);
    }
    expect(counter.reads).toBe(before);

    const plain = new Database(':memory:');
    const plainCounter = countTotalReads(plain);
    const plainWatch = ChangeWatch.of(plain);
    const plainBefore = plainCounter.reads;
    for (let i = 0; i < 100; i++) plainWatch.generation();
    expect(plainCounter.reads).toBe(plainBefore + 100);
  });

  // Every way a connection can write: each must move the generation at once.
  const writes: Array<[string, (db: Database) => void]> = [
    ['prepare().run', (db) => db.prepare("INSERT INTO t (v) VALUES ('a')").run()],
    ['prepare().get with RETURNING', (db) => db.prepare("INSERT INTO t (v) VALUES ('a') RETURNING id").get()],
    ['prepare().all with RETURNING', (db) => db.prepare("INSERT INTO t (v) VALUES ('a') RETURNING id").all()],
    ['prepare().values with RETURNING', (db) => db.prepare("INSERT INTO t (v) VALUES ('a') RETURNING id").values()],
    ['prepare().iterate with RETURNING', (db) => [...db.prepare("INSERT INTO t (v) VALUES ('a') RETURNING id").iterate()]],
    ['for-of over a statement with RETURNING', (db) => [...db.prepare("INSERT INTO t (v) VALUES ('a') RETURNING id")]],
    ['query().run', (db) => db.query("INSERT INTO t (v) VALUES ('a')").run()],
    ['run', (db) => db.run("INSERT INTO t (v) VALUES ('a')")],
    ['exec', (db) => db.exec("INSERT INTO t (v) VALUES ('a')")],
    ['a write after a read in one exec', (db) => db.exec("SELECT 1; INSERT INTO t (v) VALUES ('a')")],
    ['UPDATE', (db) => db.run("UPDATE t SET v = 'changed'")],
    ['DELETE of every row', (db) => db.run('DELETE FROM t')],
    ['transaction', (db) => db.transaction(() => db.prepare("INSERT INTO t (v) VALUES ('a')").run()).immediate()],
    ['a WITH ... INSERT', (db) => db.prepare("WITH x AS (SELECT 'a' AS v) INSERT INTO t (v) SELECT v FROM x").run()],
  ];
  for (const [name, write] of writes) {
    it(`sees a write through ${name}`, () => {
      const db = trackedDb(`write-${name.replace(/\W+/g, '-')}.db`);
      db.run("INSERT INTO t (v) VALUES ('seed')");
      const watch = ChangeWatch.of(db);
      const first = watch.generation();
      write(db);
      expect(watch.generation()).not.toBe(first);
    });
  }

  it('sees a write through a statement prepared before the watch existed, executed many times', () => {
    const db = trackedDb('early.db');
    const insert = db.prepare("INSERT INTO t (v) VALUES ('early')");
    const watch = ChangeWatch.of(db);
    let last = watch.generation();
    for (let i = 0; i < 50; i++) {
      insert.run();
      const next = watch.generation();
      expect(next).not.toBe(last);
      last = next;
    }
  });

  it('sees every write the services make through drizzle on a database from openDb', () => {
    const { sqlite, db } = openDb(join(dir, 'drizzle.db'));
    migrate(db);
    const counter = countTotalReads(sqlite);
    const watch = ChangeWatch.of(sqlite);
    const first = watch.generation();
    const reads = counter.reads;
    sqlite.query('SELECT count(*) FROM users').get();
    expect(watch.generation()).toBe(first);
    expect(counter.reads).toBe(reads);
    db.run(sql`INSERT INTO users (id, email, password_hash, created_at, updated_at) VALUES ('u1', 'a@example.com', 'x', 0, 0)`);
    const second = watch.generation();
    expect(second).not.toBe(first);
    db.update(users).set({ updatedAt: 1 }).where(eq(users.id, 'u1')).run();
    const third = watch.generation();
    expect(third).not.toBe(second);
    db.delete(users).where(eq(users.id, 'u1')).returning({ id: users.id }).all();
    expect(watch.generation()).not.toBe(third);
  });
});
