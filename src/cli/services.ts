/** What the account commands (`user ...`, `key ...`) share: the open services, argument checks, error lines. */
import { createServices, type Services } from '../app.ts';
import type { Config } from '../config.ts';
import { AppError } from '../http/errors.ts';
import { normaliseEmail } from '../lib/email.ts';
import { createLogger } from '../lib/logger.ts';
import type { UserRow } from '../modules/users/service.ts';
import { CliError, EXIT_USAGE } from './cli-error.ts';
import { openStore, type Creation, type Store } from './store.ts';

/** Where the commands print their results (stdout in the binary; errors go through CliError). */
export interface Output {
  out(line: string): void;
}

/**
 * Runs `work` with the services on the configured database, then closes it. A plain close, no forced
 * checkpoint: a server may be running on the same file (safe: SQLite serialises the writes).
 */
export async function withServices<T>(config: Config, creation: Creation, work: (services: Services, store: Store) => Promise<T> | T): Promise<T> {
  const store = openStore(config, creation);
  try {
    const logger = createLogger(config.logLevel, (line) => process.stderr.write(line));
    return await work(createServices({ config, db: store.handle, jwtSecret: store.jwtSecret, logger }), store);
  } finally {
    store.handle.sqlite.close();
  }
}

/**
 * The one email argument of `<command>`, normalised as the API stores it.
 * @throws CliError (exit 2) when there is not exactly one, or it is not an email.
 */
export function emailArgument(args: readonly string[], command: string, hint = ''): string {
  if (args.length !== 1) throw new CliError(`${command} takes exactly one argument, the email${args.length > 1 ? hint : ''}`, EXIT_USAGE);
  const email = normaliseEmail(args[0]!);
  if (email === undefined) throw new CliError(`"${args[0]}" is not a valid email address`, EXIT_USAGE);
  return email;
}

/** The account with `email`. @throws CliError (exit 1) when there is none. */
export function requireAccount(services: Services, email: string): UserRow {
  const user = services.users.getByEmail(email);
  if (!user) throw new CliError(`no account with the email ${email}`);
  return user;
}

/** Service errors (weak password, email taken) become one line; anything else stays unexpected. */
export async function asCliError<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof AppError) throw new CliError(error.message);
    throw error;
  }
}

/** Rows as columns padded to their widest cell; the last column is not padded (it may hold spaces). */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: readonly string[]) => cells.map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ');
  return [line(header), ...rows.map(line)];
}
