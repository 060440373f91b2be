/** `expose http <target>`: resolves the settings, starts the tunnel, shows it, and stops it on Ctrl-C. */
import type { Command } from './args.ts';
import { configPath, readConfig } from './config-file.ts';
import { ClientError, EXIT_INTERRUPTED, UsageError } from './errors.ts';
import type { Reporter } from './events.ts';
import { CLIENT_NAME } from './help.ts';
import { LiveDisplay } from './live-display.ts';
import { JsonReporter, PlainReporter } from './reporters.ts';
import { missingKeyError, resolveCredentials, testIntervalsFromEnv, trustedCertificates } from './settings.ts';
import { TunnelClient } from './tunnel-client.ts';

type HttpCommand = Extract<Command, { name: 'http' }>;
type Env = Record<string, string | undefined>;

// The protocol's cap on Auth `api_key`; a longer "key" is a paste gone wrong, refused before connecting.
const MAX_API_KEY_CHARS = 8192;
const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/**
 * Runs the tunnel until Ctrl-C / SIGTERM (then 0) or a failure it must not retry (a ClientError,
 * exit 1). A second Ctrl-C exits at once.
 */
export async function runHttp(command: HttpCommand, env: Env): Promise<number> {
  const envServer = env.EXPOSE_SERVER || undefined;
  const envKey = env.EXPOSE_API_KEY || undefined;
  // The saved login is read only when something is missing, so a broken file does not stop a
  // fully configured run.
  const needsConfig = (command.server ?? envServer) === undefined || (command.key ?? envKey) === undefined;
  const saved = needsConfig ? readConfig(configPath(env)) : undefined;
  const credentials = resolveCredentials({ server: command.server, key: command.key, caFile: command.caFile }, env, saved);
  const apiKey = credentials.apiKey;
  if (apiKey === undefined) throw missingKeyError(credentials.server);
  if (apiKey.length > MAX_API_KEY_CHARS || !/^[\x21-\x7e]+$/.test(apiKey)) throw new UsageError('the API key is malformed (check EXPOSE_API_KEY, --key or `expose login`)');
  const intervals = testIntervalsFromEnv(env);
  const ca = trustedCertificates(credentials.caFile);
  warnIfCleartext(credentials.server);

  const reporter = createReporter(command.json, env);
  const client = new TunnelClient({
    serverUrl: credentials.server,
    apiKey,
    clientName: CLIENT_NAME,
    target: command.target,
    subdomain: command.subdomain,
    hostHeader: command.hostHeader,
    ca,
    reporter,
    ...intervals,
  });
  let signals = 0;
  const onSignal = () => {
    if (++signals > 1) process.exit(EXIT_INTERRUPTED);
    client.stop();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const outcome = await client.run();
    if (outcome.status === 'fatal') throw new ClientError(outcome.message);
    return 0;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    reporter.close();
  }
}

function createReporter(json: boolean, env: Env): Reporter {
  const writeLine = (line: string) => void process.stdout.write(`${line}\n`);
  if (json) return new JsonReporter(writeLine);
  if (process.stdout.isTTY) {
    const colour = env.NO_COLOR === undefined || env.NO_COLOR === '';
    return new LiveDisplay({ write: (text) => void process.stdout.write(text), get columns() { return process.stdout.columns; } }, colour);
  }
  return new PlainReporter(writeLine);
}

// The key travels in the first message: over plain http to another machine, anyone on the path reads it.
function warnIfCleartext(server: string): void {
  const url = new URL(server);
  if (url.protocol === 'http:' && !LOOPBACK_HOSTS.has(url.hostname) && !url.hostname.endsWith('.localhost')) {
    process.stderr.write(`expose: warning: ${url.host} is plain http, so the API key crosses the network unencrypted\n`);
  }
}
