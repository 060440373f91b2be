/**
 * `backup <file>`: a consistent copy of the database, made while the server runs, readable by its
 * owner only. Built into the binary because the container image has no sqlite3, and because the
 * sqlite3 shell writes its copy with the umask's mode: world-readable password hashes and JWT secret.
 */
import { Database } from 'bun:sqlite';
import { closeSync, fchmodSync, openSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { Config } from '../config.ts';
import { CliError, EXIT_USAGE } from './cli-error.ts';
import { requireDatabaseFile, restrictNewFiles } from './store.ts';
import type { Output } from './services.ts';

const OWNER_ONLY = 0o600;
/** How long to wait for a writer's lock, as the server does. */
const BUSY_TIMEOUT_MS = 5_000;
/** `backup -` writes the copy to stdout (for `docker exec ... > file`, where no path is shared). */
const STDOUT = '-';

/**
 * Creates `path` empty with mode 0600, refusing one that exists: a backup never overwrites anything,
 * and the file is private before a byte of the database is in it, whatever the umask says.
 */
function createPrivateFile(path: string): void {
  let fd: number;
  try {
    fd = openSync(path, 'wx', OWNER_ONLY);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new CliError(`${path} already exists: a backup never overwrites a file; choose a new name`);
    throw new CliError(`cannot create ${path}: ${(error as Error).message}`);
  }
  try {
    fchmodSync(fd, OWNER_ONLY);
  } finally {
    closeSync(fd);
  }
}

/**
 * Copies the database into the empty file `target` with `VACUUM INTO`: one read transaction, so the
 * copy is consistent however many writes the running server commits meanwhile. The database is opened
 * as it is: never created, never migrated (a backup taken before an upgrade keeps the old schema).
 */
function vacuumInto(dbPath: string, target: string): void {
  let source: Database;
  try {
    // Read-write but never create: the last connection to close folds and removes the -wal and -shm
    // it had to create, so none owned by the wrong user is left behind for the server.
    source = new Database(dbPath, { readwrite: true, create: false });
  } catch (error) {
    throw new CliError(`cannot open database "${dbPath}": ${(error as Error).message}`);
  }
  try {
    source.run(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`);
    source.run('VACUUM INTO ?', [target]);
  } catch (error) {
    rmSync(target, { force: true });
    throw new CliError(`backup of "${dbPath}" failed: ${(error as Error).message}`);
  } finally {
    source.close();
  }
}

/** Runs `backup <file | ->`; prints what was written (to stderr when the copy itself goes to stdout). */
export async function backupCommand(config: Config, args: readonly string[], output: Output): Promise<void> {
  if (args.length !== 1) throw new CliError('backup takes exactly one argument: the file to write (or - for stdout)', EXIT_USAGE);
  if (config.dbPath === ':memory:') throw new CliError('backup needs a database file, not :memory:', EXIT_USAGE);
  requireDatabaseFile(config);
  restrictNewFiles();
  const toStdout = args[0] === STDOUT;
  if (toStdout && process.stdout.isTTY) throw new CliError('backup -: stdout is a terminal; redirect it to a file', EXIT_USAGE);
  // For stdout, a private file beside the database (a directory the server can write) carries the copy.
  const target = toStdout ? join(dirname(config.dbPath), `.${basename(config.dbPath)}.backup-${process.pid}`) : args[0]!;
  createPrivateFile(target);
  vacuumInto(config.dbPath, target);
  const bytes = statSync(target).size;
  if (toStdout) {
    try {
      await Bun.write(Bun.stdout, Bun.file(target));
    } finally {
      rmSync(target, { force: true });
    }
    process.stderr.write(`backed up ${resolve(config.dbPath)} to stdout (${bytes} bytes)\n`);
    return;
  }
  output.out(`backed up ${resolve(config.dbPath)} to ${resolve(target)} (${bytes} bytes, mode 0600)`);
}
