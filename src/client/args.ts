/** The command line, read with node:util parseArgs into one typed command. */
import { parseArgs } from 'node:util';
import { isValidSubdomain } from '../tunnel/protocol.ts';
import { UsageError } from './errors.ts';
import type { HostHeaderMode } from './headers.ts';
import { parseTarget, type LocalTarget } from './target.ts';

/** What the user asked for. */
export type Command =
  | { name: 'help' }
  | { name: 'version' }
  | { name: 'login'; server: string | undefined; caFile?: string }
  | {
      name: 'http';
      target: LocalTarget;
      server: string | undefined;
      key: string | undefined;
      /** A PEM file of a CA to trust besides the system's (a self-signed or private server). */
      caFile?: string;
      subdomain: string | null;
      hostHeader: HostHeaderMode;
      json: boolean;
    };

const OPTIONS = {
  server: { type: 'string' },
  key: { type: 'string' },
  'ca-file': { type: 'string' },
  subdomain: { type: 'string' },
  'host-header': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'v' },
} as const;

type OptionName = keyof typeof OPTIONS;

/** Options each command takes besides --help. */
const COMMAND_OPTIONS: Record<'login' | 'http', ReadonlySet<OptionName>> = {
  login: new Set(['server', 'ca-file']),
  http: new Set(['server', 'key', 'ca-file', 'subdomain', 'host-header', 'json']),
};

/**
 * Reads argv (without the runtime and script). Error messages never quote a stray argument: a
 * mistyped flag (`--kye exp_k1_…`) would otherwise print the key it was meant to carry.
 * @throws UsageError on anything it cannot read.
 */
export function parseCommandLine(argv: string[]): Command {
  let parsed: { values: Partial<Record<OptionName, string | boolean>>; positionals: string[] };
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError(parseErrorText(error));
  }
  const { values, positionals } = parsed;
  if (values.help) return { name: 'help' };
  const [commandName, ...rest] = positionals;
  if (commandName === undefined) {
    if (values.version) return { name: 'version' };
    throw new UsageError('no command given (try `expose --help`)');
  }
  if (commandName === 'help') return { name: 'help' };
  if (commandName !== 'login' && commandName !== 'http') throw new UsageError('unknown command (expected login or http; try `expose --help`)');
  for (const name of Object.keys(values) as OptionName[]) {
    if (!COMMAND_OPTIONS[commandName].has(name)) throw new UsageError(`--${name} does not apply to ${commandName}`);
  }
  const server = values.server as string | undefined;
  const caFile = values['ca-file'] as string | undefined;
  if (commandName === 'login') {
    if (rest.length > 0) throw new UsageError('login takes no arguments (the key is asked for, or read from stdin)');
    return { name: 'login', server, ...(caFile !== undefined ? { caFile } : {}) };
  }
  if (rest.length === 0) throw new UsageError('http needs the local port, host:port or URL (e.g. `expose http 3000`)');
  if (rest.length > 1) throw new UsageError('http takes one local target');
  return {
    name: 'http',
    target: parseTarget(rest[0]!),
    server,
    key: values.key as string | undefined,
    ...(caFile !== undefined ? { caFile } : {}),
    subdomain: parseSubdomain(values.subdomain as string | undefined),
    hostHeader: parseHostHeader(values['host-header'] as string | undefined),
    json: values.json === true,
  };
}

function parseSubdomain(input: string | undefined): string | null {
  if (input === undefined) return null;
  // DNS names are case-insensitive; the server only knows lower case.
  const name = input.toLowerCase();
  if (!isValidSubdomain(name)) throw new UsageError('invalid --subdomain: 3 to 63 of a-z, 0-9 and -, not starting or ending with -');
  return name;
}

function parseHostHeader(input: string | undefined): HostHeaderMode {
  if (input === undefined || input === 'rewrite') return 'rewrite';
  if (input === 'preserve') return 'preserve';
  throw new UsageError('--host-header takes preserve (or rewrite, the default)');
}

// parseArgs quotes the option, and for some errors the value too: keep the option name only.
function parseErrorText(error: unknown): string {
  const code = (error as { code?: unknown }).code;
  const option = /'(-{1,2}[A-Za-z][\w-]*)/.exec((error as Error).message)?.[1];
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') return `unknown option ${option ?? ''} (try \`expose --help\`)`.replace('  ', ' ');
  if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') return `option ${option ?? ''} needs a value, or takes none`.replace('  ', ' ');
  return 'cannot read the command line (try `expose --help`)';
}
