/** Opens the configured database for a command: open, migrate, resolve the JWT secret; one clear line on failure. */
import { version } from '../../package.json';
import type { Config } from '../config.ts';
import { openDb, type DbHandle } from '../db/client.ts';
import { SchemaTooNewError, migrate } from '../db/migrate.ts';
import { resolveJwtSecret } from '../db/settings.ts';
import { CliError } from './cli-error.ts';

const PRIVATE_FILES_UMASK = 0o077;
const MEMORY_DATABASE = ':memory:';

/** An open, migrated database and the JWT secret in force. */
export interface Store {
  handle: DbHandle;
  jwtSecret: string;
  /** Emails stored in a non-NFC form whose NFC form another account holds (see src/db/normalise-emails.ts). */
  emailConflicts: string[];
}

/** Whether a command may create the database when there is none at the configured path. */
export type Creation = 'create' | 'must-exist';

/**
 * Files this process creates (the database, its -wal and -shm, a backup) are readable by their owner
 * only: they hold password hashes and the JWT secret. An existing file keeps its mode.
 */
export function restrictNewFiles(): void {
  process.umask(PRIVATE_FILES_UMASK);
}

/**
 * Refuses a database path where there is no file. Only `serve` and `user add` create a database: any
 * other command run in the wrong directory would otherwise leave an empty `./expose.db` behind and
 * answer as if the server had no accounts.
 * @throws CliError naming the absolute path.
 */
export function requireDatabaseFile(config: Config): void {
  if (config.dbPath === MEMORY_DATABASE) return;
  // Required here, by the commands that check: the server's start loads neither module (~1 ms).
  const { existsSync } = require('node:fs') as typeof import('node:fs');
  const { resolve } = require('node:path') as typeof import('node:path');
  if (existsSync(config.dbPath)) return;
  throw new CliError(`no database at ${resolve(config.dbPath)} (point --db or EXPOSE_DB at the server's database)`);
}

/**
 * Opens the database at `config.dbPath` and brings its schema up to date. `serve` and `user add`
 * create it, so the first `user add` on a fresh host works before the server ever ran; every other
 * command needs it to exist.
 * @throws CliError naming the file when it is missing, cannot be opened or migrated, or is newer than this build.
 */
export function openStore(config: Config, creation: Creation): Store {
  restrictNewFiles();
  if (creation === 'must-exist') requireDatabaseFile(config);
  let handle: DbHandle;
  try {
    handle = openDb(config.dbPath);
  } catch (error) {
    throw new CliError(`cannot open database "${config.dbPath}": ${(error as Error).message}`);
  }
  try {
    const { conflicts } = migrate(handle.db);
    return { handle, jwtSecret: resolveJwtSecret(handle.db, config.jwtSecret), emailConflicts: conflicts };
  } catch (error) {
    handle.sqlite.close();
    if (error instanceof SchemaTooNewError) {
      throw new CliError(
        `database "${config.dbPath}" has schema ${error.databaseSchema}, but expose-server ${version} knows schema ` +
          `${error.knownSchema} only: run the release that migrated it (or restore a backup taken before that upgrade)`,
      );
    }
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
