/** Splits the command line into command words and setting flags; the flags themselves are validated by loadConfig. */
import { CliError, EXIT_USAGE } from './cli-error.ts';

/** The command line, taken apart. */
export interface ParsedArgs {
  /** Positional words: the command and its arguments (`user add a@example.com`). */
  words: string[];
  /** `--flag value` / `--flag=value` pairs for loadConfig, in their original order. */
  settingFlags: string[];
  help: boolean;
  version: boolean;
}

const HELP_FLAGS = new Set(['--help', '-h']);
const VERSION_FLAGS = new Set(['--version', '-v', '-V']);
/** Flags someone might try in order to pass a password; refused with a pointer to stdin. */
const PASSWORD_FLAGS = new Set(['--password', '--pass', '-p']);

/**
 * Flags may come before or after the command words. Every setting flag takes a value, so the word
 * after a bare `--flag` is its value, never a command word.
 * @throws CliError when a password is offered as a flag.
 */
export function parseArgs(argv: readonly string[]): ParsedArgs {
  const parsed: ParsedArgs = { words: [], settingFlags: [], help: false, version: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (HELP_FLAGS.has(arg)) parsed.help = true;
    else if (VERSION_FLAGS.has(arg)) parsed.version = true;
    else if (PASSWORD_FLAGS.has(arg.split('=', 1)[0]!)) {
      throw new CliError('passwords are never taken on the command line: type it at the prompt or pipe it on stdin', EXIT_USAGE);
    } else if (arg.startsWith('-') && arg !== '-') {
      // A lone "-" is a word: stdout or stdin, as in `backup -`.
      parsed.settingFlags.push(arg);
      if (!arg.includes('=') && i + 1 < argv.length) parsed.settingFlags.push(argv[++i]!);
    } else {
      parsed.words.push(arg);
    }
  }
  return parsed;
}
