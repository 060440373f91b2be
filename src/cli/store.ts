/** Opens the configured database for a command: open, migrate, resolve the JWT secret; one clear line on failure. */
import type { Config } from '../config.ts';
import { openDb, type DbHandle } from '../db/client.ts';
import { migrate } from '../db/migrate.ts';
import { resolveJwtSecret } from '../db/settings.ts';
import { CliError } from './cli-error.ts';

const PRIVATE_FILES_UMASK = 0o077;

/** An open, migrated database and the JWT secret in force. */
export interface Store {
  handle: DbHandle;
  jwtSecret: string;
}

/**
 * Opens the database at `config.dbPath` (creating it) and brings its schema up to date; every command
 * does this, so the first `user add` on a fresh host works before the server ever ran.
 * @throws CliError naming the file when it cannot be opened or migrated.
 */
export function openStore(config: Config): Store {
  // The database holds password hashes and the JWT secret: files this process creates (the database,
  // its -wal and -shm) are readable by their owner only. An existing file keeps its mode.
  process.umask(PRIVATE_FILES_UMASK);
  let handle: DbHandle;
  try {
    handle = openDb(config.dbPath);
  } catch (error) {
    throw new CliError(`cannot open database "${config.dbPath}": ${(error as Error).message}`);
  }
  try {
    migrate(handle.db);
    return { handle, jwtSecret: resolveJwtSecret(handle.db, config.jwtSecret) };
  } catch (error) {
    handle.sqlite.close();
    throw new CliError(`cannot prepare database "${config.dbPath}": ${(error as Error).message}`);
  }
}

/**
 * Folds the write-ahead log back into the database file and closes it, so a stopped server leaves one
 * self-contained file and no -wal/-shm beside it. Returns false when the checkpoint could not run
 * (another process holding the database, say); nothing is lost then, the log is simply kept.
 */
export function closeStore(store: Store): boolean {
  let checkpointed = true;
  try {
    store.handle.sqlite.run('PRAGMA wal_checkpoint(TRUNCATE)');
  } catch {
    checkpointed = false;
  }
  store.handle.sqlite.close();
  return checkpointed;
}
