/**
 * Reads a password for the `user` commands: at a terminal, asked without echo (twice, to catch a typo);
 * otherwise one line from stdin, so scripts can pipe it. Never from argv, where `ps` and shell history
 * would show it.
 */
import { promptHidden, readFirstLine } from '../lib/hidden-input.ts';
import { CliError } from './cli-error.ts';

/** Exit status of a command cancelled with Ctrl-C (128 + SIGINT), as shells report it. */
const EXIT_CANCELLED = 130;

async function ask(prompt: string): Promise<string> {
  const answer = await promptHidden(prompt);
  if (answer === null) throw new CliError('cancelled', EXIT_CANCELLED);
  return answer;
}

/**
 * The new password. At a terminal it is asked twice and must match; from a pipe it is the first line.
 * @throws CliError when nothing was given or the two entries differ.
 */
export async function readNewPassword(): Promise<string> {
  if (process.stdin.isTTY) {
    const first = await ask('New password: ');
    const second = await ask('Repeat password: ');
    if (first !== second) throw new CliError('the two passwords do not match');
    return first;
  }
  const line = await readFirstLine();
  if (line === undefined || line === '') throw new CliError('no password on stdin (pipe one line, or run at a terminal to be asked)');
  return line;
}
