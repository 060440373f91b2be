/**
 * `user add|passwd|list|delete|disable|enable|logout`: account administration for operators who keep
 * registration closed, and for incidents. Uses the same services as the API, so the same email and
 * password rules apply.
 */
import { eq } from 'drizzle-orm';
import type { Services } from '../app.ts';
import type { Config } from '../config.ts';
import { sessions } from '../db/schema.ts';
import { rfc3339 } from '../lib/clock.ts';
import { CliError, EXIT_USAGE } from './cli-error.ts';
import { PROGRAM } from './help.ts';
import { readNewPassword } from './password-input.ts';
import { asCliError, emailArgument, requireAccount, table, withServices, type Output } from './services.ts';
import type { Store } from './store.ts';

const USAGE = `usage: ${PROGRAM} user add|passwd|delete|disable|enable|logout <email> | user list`;
const VERBS = new Set(['add', 'passwd', 'list', 'delete', 'disable', 'enable', 'logout']);
const PASSWORD_HINT = ' (the password is asked at the prompt or read from stdin, never given as an argument)';

async function addUser(services: Services, email: string, output: Output): Promise<void> {
  // Checked before asking, so nobody types a password for nothing.
  if (services.users.getByEmail(email)) throw new CliError(`an account with the email ${email} already exists`);
  const password = await readNewPassword();
  const user = await asCliError(() => services.users.create(email, password));
  output.out(`created user ${user.email} (id ${user.id})`);
}

async function setPassword(store: Store, services: Services, email: string, output: Output): Promise<void> {
  const user = requireAccount(services, email);
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
  const cells = rows.map((row) => [row.id, row.email, rfc3339(row.createdAt), row.disabledAt === null ? 'active' : `disabled ${rfc3339(row.disabledAt)}`]);
  for (const line of table(['ID', 'EMAIL', 'CREATED_AT', 'STATUS'], cells)) output.out(line);
}

/** Deletes at once: the exact email is the confirmation, so scripts need no flag and no terminal. */
function deleteUser(services: Services, email: string, output: Output): void {
  const user = requireAccount(services, email);
  const gone = services.users.deleteAccount(user.id);
  if (!gone) throw new CliError(`no account with the email ${email}`);
  output.out(`deleted user ${user.email} (id ${user.id}) with ${gone.sessions} session(s) and ${gone.apiKeys} API key(s)`);
}

function setDisabled(services: Services, email: string, disabled: boolean, output: Output): void {
  const user = requireAccount(services, email);
  const result = services.users.setDisabled(user.id, disabled);
  if (!result) throw new CliError(`no account with the email ${email}`);
  if (!disabled) {
    output.out(result.changed ? `enabled ${user.email}` : `${user.email} was not disabled`);
    return;
  }
  const state = result.changed ? `disabled ${user.email}` : `${user.email} was disabled already`;
  output.out(`${state}; ${result.sessionsEnded} session(s) ended; its API keys are refused until \`user enable\``);
}

function logoutUser(services: Services, email: string, output: Output): void {
  const user = requireAccount(services, email);
  output.out(`${services.users.endSessions(user.id)} session(s) of ${user.email} ended; API keys untouched (see \`key list\`)`);
}

/**
 * Runs `user <verb> ...args` against the configured database (safe beside a running server: SQLite
 * serialises the writes). Only `add` may create the database.
 */
export async function userCommand(config: Config, args: readonly string[], output: Output): Promise<void> {
  const [verb = '', ...rest] = args;
  if (!VERBS.has(verb)) throw new CliError(USAGE, EXIT_USAGE);
  if (verb === 'list' && rest.length > 0) throw new CliError('user list takes no arguments', EXIT_USAGE);
  // The arguments are checked before the database is touched.
  const email = verb === 'list' ? '' : emailArgument(rest, `user ${verb}`, verb === 'add' || verb === 'passwd' ? PASSWORD_HINT : '');
  await withServices(config, verb === 'add' ? 'create' : 'must-exist', async (services, store) => {
    if (verb === 'add') await addUser(services, email, output);
    else if (verb === 'passwd') await setPassword(store, services, email, output);
    else if (verb === 'list') listUsers(services, output);
    else if (verb === 'delete') deleteUser(services, email, output);
    else if (verb === 'disable' || verb === 'enable') setDisabled(services, email, verb === 'disable', output);
    else logoutUser(services, email, output);
  });
}
