/** The command line: parses argv, dispatches to a command, and turns failures into one line and an exit status. */
import { ConfigError, loadConfig } from '../config.ts';
import { parseArgs } from './args.ts';
import { CliError, EXIT_FAILURE, EXIT_USAGE } from './cli-error.ts';
import { healthcheck } from './healthcheck.ts';
import { PROGRAM, helpText, versionText } from './help.ts';
import { keyCommand } from './key.ts';
import { serve } from './serve.ts';
import { userCommand } from './user.ts';

const out = (line: string) => process.stdout.write(`${line}\n`);

async function dispatch(argv: readonly string[]): Promise<number> {
  const args = parseArgs(argv);
  if (args.help || args.words[0] === 'help') {
    process.stdout.write(helpText());
    return 0;
  }
  if (args.version || args.words[0] === 'version') {
    out(versionText());
    return 0;
  }
  // Settings are validated before any command runs, so a bad one stops everything before anything listens.
  const config = loadConfig(process.env, args.settingFlags);
  const [command = 'serve', ...rest] = args.words;
  switch (command) {
    case 'serve':
      if (rest.length > 0) throw new CliError(`serve takes no arguments, got "${rest[0]}" (see --help)`, EXIT_USAGE);
      return serve(config);
    case 'user':
      await userCommand(config, rest, { out });
      return 0;
    case 'key':
      await keyCommand(config, rest, { out });
      return 0;
    case 'backup':
      // Imported when asked for: it needs node:fs and node:path, which the server's start does not load.
      await (await import('./backup.ts')).backupCommand(config, rest, { out });
      return 0;
    case 'healthcheck':
      out(await healthcheck(config));
      return 0;
    default:
      throw new CliError(`unknown command "${command}" (see --help)`, EXIT_USAGE);
  }
}

/** Runs the command line and resolves with the process exit status; failures print exactly one line to stderr. */
export async function runCli(argv: readonly string[]): Promise<number> {
  try {
    return await dispatch(argv);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${PROGRAM}: ${error.message}\n`);
      return EXIT_USAGE;
    }
    if (error instanceof CliError) {
      process.stderr.write(`${PROGRAM}: ${error.message}\n`);
      return error.exitCode;
    }
    // Unexpected: still one line, so scripts and journald get a readable reason.
    const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    process.stderr.write(`${PROGRAM}: unexpected error: ${message.replaceAll('\n', ' ')}\n`);
    return EXIT_FAILURE;
  }
}
