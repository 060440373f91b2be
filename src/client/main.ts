/** The command line of `expose`: parses argv, runs the command, turns every failure into one line and an exit status. */
import { parseCommandLine } from './args.ts';
import { configPath, readConfig } from './config-file.ts';
import { ClientError, EXIT_FAILURE } from './errors.ts';
import { printable } from './format.ts';
import { helpText, versionText } from './help.ts';
import { runHttp } from './http-command.ts';
import { readApiKey } from './key-input.ts';
import { login } from './login.ts';
import { resolveCredentials, trustedCertificates } from './settings.ts';

type Env = Record<string, string | undefined>;

/** Runs one command; resolves to the exit status. Errors are printed as `expose: <message>` on stderr. */
export async function runCli(argv: string[], env: Env = process.env): Promise<number> {
  try {
    const command = parseCommandLine(argv);
    switch (command.name) {
      case 'help':
        process.stdout.write(helpText());
        return 0;
      case 'version':
        process.stdout.write(`${versionText()}\n`);
        return 0;
      case 'login': {
        const path = configPath(env);
        // The saved server is the default for a new login too, unless a flag or variable names one.
        const named = command.server !== undefined || Boolean(env.EXPOSE_SERVER);
        const saved = named ? undefined : safeRead(path);
        const { server, caFile } = resolveCredentials({ server: command.server, caFile: command.caFile }, { EXPOSE_SERVER: env.EXPOSE_SERVER, EXPOSE_CA_FILE: env.EXPOSE_CA_FILE }, saved);
        const ca = trustedCertificates(caFile);
        await login({ server, configPath: path, caFile, ca, readKey: readApiKey, writeLine: (line) => void process.stdout.write(`${line}\n`) });
        return 0;
      }
      case 'http':
        return await runHttp(command, env);
    }
  } catch (error) {
    if (error instanceof ClientError) {
      process.stderr.write(`expose: ${printable(error.message)}\n`);
      return error.exitCode;
    }
    process.stderr.write(`expose: unexpected error: ${printable(error instanceof Error ? error.message : String(error))}\n`);
    return EXIT_FAILURE;
  }
}

// login rewrites the file, so a broken one must not stop it.
function safeRead(path: string) {
  try {
    return readConfig(path);
  } catch {
    return undefined;
  }
}
