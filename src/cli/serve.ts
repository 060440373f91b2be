/**
 * `serve`: open the database, listen (src/server.ts), and on SIGTERM or SIGINT stop gracefully: tell
 * tunnel clients, stop accepting, let requests in flight finish (bounded), fold the WAL into the
 * database file, close it. With certificate files, SIGHUP reloads them.
 */
import { type Config, DEFAULT_PORT } from '../config.ts';
import { parseIp } from '../lib/client-ip.ts';
import { version } from '../../package.json';
import { listen, listenTls, type RunningServer, type RunningTlsServer } from '../server.ts';
import { httpsOrigin } from '../tls/http-redirect.ts';
import { TlsSetupError } from '../tls/source.ts';
import type { FileCertificateSource } from '../tls/file-source.ts';
import { intervalsFromEnv } from '../tunnel/settings.ts';
import { createLogger, flushLogs, type Logger } from '../lib/logger.ts';
import { CliError } from './cli-error.ts';
import { closeStore, openStore } from './store.ts';

/** How long in-flight requests get to finish after a stop signal before their connections are cut. */
export const SHUTDOWN_GRACE_MS = 10_000;

/** A stop signal this soon after the first is the same one delivered twice, not an impatient operator. */
const DUPLICATE_SIGNAL_WINDOW_MS = 250;

const STOP_SIGNALS = ['SIGTERM', 'SIGINT'] as const;
type StopSignal = (typeof STOP_SIGNALS)[number];

/** A stop signal and when it arrived (performance.now()). */
interface StopEvent {
  signal: StopSignal;
  atMs: number;
}

/**
 * SIGTERM and SIGINT as they arrive, for the whole life of `serve`. One handler stays installed from
 * start to end: were it removed and added again between two signals, a signal landing in that gap
 * would take the default action and kill the process mid-shutdown, which is what happened to Ctrl-C
 * on `npm start` (the terminal's SIGINT, then npm's forwarded copy a moment later).
 */
function stopSignals() {
  const arrived: StopEvent[] = [];
  let wake: (() => void) | undefined;
  const handlers = STOP_SIGNALS.map((signal) => {
    const handler = () => {
      arrived.push({ signal, atMs: performance.now() });
      wake?.();
    };
    process.on(signal, handler);
    return handler;
  });
  return {
    /** The next signal not yet taken, waiting for one if none is left. */
    async next(): Promise<StopEvent> {
      while (arrived.length === 0) await new Promise<void>((resolve) => (wake = resolve));
      return arrived.shift()!;
    },
    /** Gives SIGTERM and SIGINT back their default action. */
    dispose(): void {
      for (const [i, name] of STOP_SIGNALS.entries()) process.off(name, handlers[i]!);
    },
  };
}

/** `http://host:port`, with IPv6 hosts in brackets. */
function listenUrl(host: string, port: number, scheme = 'http'): string {
  return `${scheme}://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/**
 * Where clients can reach a server listening on `host`: a wildcard means every address of this
 * machine (IPv4 only for 0.0.0.0), which `http://0.0.0.0:3000` does not tell a newcomer.
 */
function reachableUrls(host: string, port: number, scheme = 'http'): string[] {
  if (host !== '0.0.0.0' && host !== '::') return [listenUrl(host, port, scheme)];
  const families = host === '::' ? ['IPv4', 'IPv6'] : ['IPv4'];
  // Required here: only a wildcard host needs node:os.
  const { networkInterfaces } = require('node:os') as typeof import('node:os');
  const addresses = Object.values(networkInterfaces()).flatMap((list) => list ?? []);
  // Link-local IPv6 addresses need a zone to be dialled; nobody would type them.
  const usable = addresses.filter((a) => families.includes(a.family) && !(a.family === 'IPv6' && a.address.startsWith('fe80:')));
  return usable.map((a) => listenUrl(a.address, port, scheme));
}

/**
 * Says whether anyone who can reach the server may create an account: open registration is the
 * default, and an operator who put the server on a public address should not learn it from a stranger.
 */
function logRegistration(logger: Logger, config: Config): void {
  if (config.registration === 'closed') {
    logger.info('registration is closed: accounts are created with `expose-server user add <email>`', { registration: 'closed' });
    return;
  }
  logger.warn('registration is open: anyone who can reach this server can create an account', {
    registration: 'open',
    to_close: 'set EXPOSE_REGISTRATION=closed (or --registration closed) and restart; then create accounts with `expose-server user add <email>`',
  });
}

/**
 * A host name that does not resolve fails to listen with Bun's "Is port 3000 in use?", which blames
 * the wrong setting; looked up first, it gets a line of its own.
 */
async function requireResolvableHost(config: Config): Promise<void> {
  if (parseIp(config.host)) return;
  try {
    await Bun.dns.lookup(config.host);
  } catch {
    throw new CliError(`cannot listen on ${listenUrl(config.host, config.port)}: the host name "${config.host}" does not resolve (EXPOSE_HOST or --host)`);
  }
}

/** What serve needs of either kind of server: the relay to tell tunnel clients, and a stop. */
interface Listening {
  relay: RunningServer['relay'];
  stop(force: boolean): Promise<void>;
  tls: RunningTlsServer | undefined;
}

/** Starts the listeners the settings ask for and logs where they are. @throws CliError when it cannot. */
async function start(config: Config, store: ReturnType<typeof openStore>, logger: Logger, intervals: ReturnType<typeof intervalsFromEnv>): Promise<Listening> {
  const options = { config, db: store.handle, jwtSecret: store.jwtSecret, logger, tunnel: intervals };
  const common = { db: config.dbPath, tunnels_at: `{subdomain}.${config.tunnelDomain}`, version, pid: process.pid };
  if (config.tlsMode === 'off') {
    let running: RunningServer;
    try {
      running = listen(options);
    } catch (error) {
      throw new CliError(`cannot listen on ${listenUrl(config.host, config.port)}: ${(error as Error).message}`);
    }
    const { server, relay } = running;
    logger.info('listening', {
      url: listenUrl(config.host, server.port!),
      port: server.port,
      reachable_at: reachableUrls(config.host, server.port!),
      ...common,
    });
    return { relay, stop: (force) => server.stop(force), tls: undefined };
  }
  let running: RunningTlsServer;
  try {
    running = await listenTls(options);
  } catch (error) {
    if (error instanceof TlsSetupError) throw new CliError(error.message);
    throw new CliError(`cannot listen on ${config.host} ports ${config.httpsPort} (https) and ${config.httpPort} (http): ${(error as Error).message}`);
  }
  const port = running.port;
  logger.info('listening', {
    url: listenUrl(config.host, port, 'https'),
    port,
    http_port: running.httpPort,
    tls: config.tlsMode,
    api_url: config.apiHost === undefined ? undefined : httpsOrigin(config.apiHost, port),
    reachable_at: reachableUrls(config.host, port, 'https'),
    ...common,
  });
  if (config.port !== DEFAULT_PORT) logger.warn('EXPOSE_PORT is not used with TLS on: the server listens on EXPOSE_HTTPS_PORT and EXPOSE_HTTP_PORT', { https_port: port, http_port: running.httpPort });
  return { relay: running.relay, stop: (force) => running.stop(force), tls: running };
}

/** Runs the server until a stop signal; resolves with the exit status once everything is closed. */
export async function serve(config: Config): Promise<number> {
  const logger = createLogger(config.logLevel);
  await requireResolvableHost(config);
  let intervals: ReturnType<typeof intervalsFromEnv>;
  try {
    intervals = intervalsFromEnv(process.env);
  } catch (error) {
    throw new CliError((error as Error).message);
  }
  const store = openStore(config, 'create');
  const signals = stopSignals();
  let running: Listening;
  try {
    running = await start(config, store, logger, intervals);
  } catch (error) {
    signals.dispose();
    closeStore(store);
    throw error;
  }
  const { relay } = running;
  // With TLS on, SIGHUP (`systemctl reload`) reads certificate files again, as nginx and haproxy do;
  // with ACME it has nothing to do, and must not take its default action (ending the process).
  const reloadable = config.tlsMode === 'files' ? (running.tls?.certificates as FileCertificateSource | undefined) : undefined;
  const onHangup = () => {
    if (reloadable !== undefined) reloadable.reload('SIGHUP');
    else logger.info('SIGHUP: nothing to reload, ACME certificates renew by themselves');
  };
  if (config.tlsMode !== 'off') process.on('SIGHUP', onHangup);
  logRegistration(logger, config);
  if (store.emailConflicts.length > 0) {
    // Only on the start that migrated: two accounts whose emails differ only in Unicode form.
    logger.warn('accounts whose emails differ only in Unicode form; the one stored decomposed cannot log in', {
      emails: store.emailConflicts,
      to_fix: 'expose-server user delete <email> for the account that should not exist',
    });
  }

  const { signal, atMs: stoppingAtMs } = await signals.next();
  logger.info('stopping', { signal, grace_ms: SHUTDOWN_GRACE_MS });
  // Tunnel clients are told first (GoAway shutdown, close 1001) and come back when the server does;
  // their sockets would otherwise hold the drain open for the whole grace period.
  relay.shutdown();
  const drained = running.stop(false).then(() => true);
  let graceTimer: Timer | undefined;
  const graceOver = new Promise<false>((resolve) => {
    graceTimer = setTimeout(() => resolve(false), SHUTDOWN_GRACE_MS);
  });
  // A second signal means "now": the operator does not want to wait for the grace period. Ctrl-C on
  // `npm start` delivers SIGINT twice at once (the terminal's, and npm's forwarded copy): that is one.
  const impatient = (async () => {
    for (;;) {
      const next = await signals.next();
      if (next.atMs - stoppingAtMs >= DUPLICATE_SIGNAL_WINDOW_MS) return false as const;
    }
  })();
  const finished = await Promise.race([drained, graceOver, impatient]);
  clearTimeout(graceTimer);
  if (!finished) {
    logger.warn('closing connections still in flight', { reason: 'grace period over or second signal' });
    await running.stop(true);
  }
  // Access-log lines are written just after each answer (a setImmediate); let the last ones out first.
  await new Promise((resolve) => setImmediate(resolve));
  const checkpointed = closeStore(store);
  logger.info('stopped', { drained: finished, wal_checkpointed: checkpointed });
  // Lines leave once per event-loop turn; the last ones must be out before the caller exits.
  flushLogs();
  signals.dispose();
  if (config.tlsMode !== 'off') process.off('SIGHUP', onHangup);
  return 0;
}
