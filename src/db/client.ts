/** Opens the SQLite database with the PRAGMAs the server relies on, and wraps it in drizzle. */
import { Database } from 'bun:sqlite';
import { drizzle, type BunSQLiteDatabase } from 'drizzle-orm/bun-sqlite';
import { trackWrites } from './change-watch.ts';
import * as schema from './schema.ts';

/** The drizzle wrapper; `$client` is the bun:sqlite handle under it (for prepared statements of its own). */
export type Db = BunSQLiteDatabase<typeof schema> & { $client: Database };

/** The raw handle (for prepared statements on hot paths, backups, close) and the drizzle wrapper. */
export interface DbHandle {
  sqlite: Database;
  db: Db;
}

/**
 * Opens (creating if needed) the database at `path`; `:memory:` gives a private in-memory one.
 * WAL lets readers run beside the writer; synchronous=NORMAL is durable across process crashes in WAL
 * mode; busy_timeout covers an operator's backup holding a lock; foreign keys enforce cascades. Its
 * writes are tracked from the first statement on (trackWrites), so cached reads need no query to stay valid.
 */
export function openDb(path: string): DbHandle {
  const sqlite = new Database(path, { create: true, strict: true });
  trackWrites(sqlite);
  if (path !== ':memory:') sqlite.run('PRAGMA journal_mode = WAL');
  sqlite.run('PRAGMA synchronous = NORMAL');
  sqlite.run('PRAGMA foreign_keys = ON');
  sqlite.run('PRAGMA busy_timeout = 5000');
  return { sqlite, db: drizzle(sqlite, { schema }) };
}
