/** ChangeWatch and GenerationCache: when a cached read must be dropped. */
import { Database } from 'bun:sqlite';
import { afterAll, describe, expect, it } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChangeWatch, EXTERNAL_CHECK_INTERVAL_MS, GenerationCache } from '../../src/db/change-watch.ts';

const dir = mkdtempSync(join(tmpdir(), 'expose-watch-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function fileDb(name: string): { path: string; db: Database } {
  const path = join(dir, name);
  const db = new Database(path, { create: true });
  db.run('PRAGMA journal_mode = WAL');
  db.run('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)');
  return { path, db };
}

describe('ChangeWatch', () => {
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
