/** `key list <email>` and `key revoke <id | key>`: an operator's view of API keys, for incidents. */
import type { Config } from '../config.ts';
import { isWellFormedApiKey } from '../lib/api-key.ts';
import { CliError, EXIT_USAGE } from './cli-error.ts';
import { PROGRAM } from './help.ts';
import { emailArgument, requireAccount, table, withServices, type Output } from './services.ts';

const USAGE = `usage: ${PROGRAM} key list <email> | key revoke <id | full key>`;
const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A key name as one line of a terminal: names are anyone's text, control characters included. */
function printable(name: string): string {
  return name.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
}

/** The one argument of `key revoke`: a key's id (from `key list`) or the full key itself (one found leaked). */
function keyReference(args: readonly string[]): string {
  if (args.length !== 1) throw new CliError('key revoke takes exactly one argument: the key id (see key list) or the full key', EXIT_USAGE);
  const reference = args[0]!.trim();
  if (!UUID_PATTERN.test(reference) && !isWellFormedApiKey(reference)) {
    // Never echoed: it may be most of a real key.
    throw new CliError('key revoke: not a key id (a UUID from key list) nor a whole API key (exp_k1_...)', EXIT_USAGE);
  }
  return reference;
}

/** Runs `key <verb> ...args` against the configured database, which must exist. */
export async function keyCommand(config: Config, args: readonly string[], output: Output): Promise<void> {
  const [verb, ...rest] = args;
  if (verb === 'list') {
    const email = emailArgument(rest, 'key list');
    await withServices(config, 'must-exist', (services) => {
      const keys = services.apiKeys.list(requireAccount(services, email).id);
      if (keys.length === 0) {
        output.out(`no API keys for ${email}`);
        return;
      }
      const cells = keys.map((key) => [key.id, key.key_prefix, key.created_at, key.last_used_at ?? 'never', printable(key.name)]);
      for (const line of table(['ID', 'PREFIX', 'CREATED_AT', 'LAST_USED_AT', 'NAME'], cells)) output.out(line);
    });
    return;
  }
  if (verb === 'revoke') {
    const reference = keyReference(rest);
    await withServices(config, 'must-exist', (services) => {
      const id = UUID_PATTERN.test(reference) ? reference : services.apiKeys.idOfKey(reference);
      const revoked = id === undefined ? undefined : services.apiKeys.revokeById(id);
      if (!revoked) throw new CliError(UUID_PATTERN.test(reference) ? `no API key with the id ${reference}` : 'no API key matches that key');
      const owner = services.users.get(revoked.userId)?.email ?? revoked.userId;
      output.out(`revoked API key ${id} (${revoked.keyPrefix}..., ${JSON.stringify(revoked.name)}) of ${owner}`);
    });
    return;
  }
  throw new CliError(USAGE, EXIT_USAGE);
}
