/**
 * `user add|passwd|list`: account administration for operators who keep registration closed. Uses the
 * same services as the API, so the same email and password rules apply.
 */
import { eq } from 'drizzle-orm';
import { createServices, type Services } from '../app.ts';
import type { Config } from '../config.ts';
import { sessions } from '../db/schema.ts';
import { AppError } from '../http/errors.ts';
import { rfc3339 } from '../lib/clock.ts';
import { normaliseEmail } from '../lib/email.ts';
import { createLogger } from '../lib/logger.ts';
import { CliError, EXIT_USAGE } from './cli-error.ts';
import { PROGRAM } from './help.ts';
import { readNewPassword } from './password-input.ts';
import { openStore, type Store } from './store.ts';

/** Where the commands print their results (stdout in the binary; errors go through CliError). */
export interface Output {
  out(line: string): void;
}

const USAGE = `usage: ${PROGRAM} user add <email> | user passwd <email> | user list`;

function emailArgument(args: readonly string[], verb: string): string {
  if (args.length !== 1) {
    const hint = args.length > 1 ? ' (the password is asked at the prompt or read from stdin, never given as an argument)' : '';
    throw new CliError(`user ${verb} takes exactly one argument, the email${hint}`, EXIT_USAGE);
  }
  const email = normaliseEmail(args[0]!);
  if (email === undefined) throw new CliError(`"${args[0]}" is not a valid email address`, EXIT_USAGE);
  return email;
}

/** Service errors (weak password, email taken) become one line; anything else stays unexpected. */
async function asCliError<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof AppError) throw new CliError(error.message);
    throw error;
  }
}

async function addUser(services: Services, email: string, output: Output): Promise<void> {
  // Checked before asking, so nobody types a password for nothing.
  if (services.users.getByEmail(email)) throw new CliError(`an account with the email ${email} already exists`);
  const password = await readNewPassword();
  const user = await asCliError(() => services.users.create(email, password));
  output.out(`created user ${user.email} (id ${user.id})`);
}

async function setPassword(store: Store, services: Services, email: string, output: Output): Promise<void> {
  const user = services.users.getByEmail(email);
  if (!user) throw new CliError(`no account with the email ${email}`);
  const password = await readNewPassword();
  const sessionsBefore = await store.handle.db.$count(sessions, eq(sessions.userId, user.id));
  // A reset is what an operator does when an account may be compromised: setPassword ends every
  // session with it, in the same transaction. API keys are left alone, as for a change through the API.
  await asCliError(() => services.users.setPassword(user.id, password));
  output.out(`password set for ${user.email}; ${sessionsBefore} session(s) ended`);
}

function listUsers(services: Services, output: Output): void {
  const rows = services.users.list();
  if (rows.length === 0) {
    output.out('no accounts');
    return;
  }
  const emailWidth = Math.max('EMAIL'.length, ...rows.map((row) => row.email.length));
  output.out(`${'ID'.padEnd(36)}  ${'EMAIL'.padEnd(emailWidth)}  CREATED_AT`);
  for (const row of rows) output.out(`${row.id}  ${row.email.padEnd(emailWidth)}  ${rfc3339(row.createdAt)}`);
}

/**
 * Runs `user <verb> ...args` against the configured database (safe beside a running server: SQLite
 * serialises the writes).
 */
export async function userCommand(config: Config, args: readonly string[], output: Output): Promise<void> {
  const [verb, ...rest] = args;
  if (verb !== 'add' && verb !== 'passwd' && verb !== 'list') throw new CliError(USAGE, EXIT_USAGE);
  if (verb === 'list' && rest.length > 0) throw new CliError('user list takes no arguments', EXIT_USAGE);
  // The arguments are checked before the database is touched.
  const email = verb === 'list' ? '' : emailArgument(rest, verb);
  const store = openStore(config);
  try {
    const logger = createLogger(config.logLevel, (line) => process.stderr.write(line));
    const services = createServices({ config, db: store.handle, jwtSecret: store.jwtSecret, logger });
    if (verb === 'add') await addUser(services, email, output);
    else if (verb === 'passwd') await setPassword(store, services, email, output);
    else listUsers(services, output);
  } finally {
    // A plain close, no forced checkpoint: a server may be running on the same file.
    store.handle.sqlite.close();
  }
}
