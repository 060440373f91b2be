/**
 * `serve`: open the database, listen, and on SIGTERM or SIGINT stop gracefully: stop accepting, let
 * requests in flight finish (bounded), fold the WAL into the database file, close it.
 */
import { createApp } from '../app.ts';
import type { Config } from '../config.ts';
import { version } from '../../package.json';
import { createLogger, flushLogs } from '../lib/logger.ts';
import { CliError } from './cli-error.ts';
import { closeStore, openStore } from './store.ts';

/** How long in-flight requests get to finish after a stop signal before their connections are cut. */
export const SHUTDOWN_GRACE_MS = 10_000;

const STOP_SIGNALS = ['SIGTERM', 'SIGINT'] as const;
type StopSignal = (typeof STOP_SIGNALS)[number];

/** Resolves with the next SIGTERM or SIGINT; until then those signals no longer kill the process. */
function nextStopSignal(): Promise<StopSignal> {
  return new Promise((resolve) => {
    const handlers = STOP_SIGNALS.map((signal) => {
      const handler = () => {
        for (const [i, name] of STOP_SIGNALS.entries()) process.off(name, handlers[i]!);
        resolve(signal);
      };
      process.on(signal, handler);
      return handler;
    });
  });
}

/** `http://host:port`, with IPv6 hosts in brackets. */
function listenUrl(host: string, port: number): string {
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** Runs the server until a stop signal; resolves with the exit status once everything is closed. */
export async function serve(config: Config): Promise<number> {
  const logger = createLogger(config.logLevel);
  const store = openStore(config);
  const app = createApp({ config, db: store.handle, jwtSecret: store.jwtSecret, logger });
  const stopSignal = nextStopSignal();
  try {
    // reusePort off: a second server on the same port must fail loudly, not share the traffic.
    app.listen({ hostname: config.host, port: config.port, reusePort: false, development: false });
  } catch (error) {
    closeStore(store);
    throw new CliError(`cannot listen on ${listenUrl(config.host, config.port)}: ${(error as Error).message}`);
  }
  const server = app.server!;
  logger.info('listening', { url: listenUrl(config.host, server.port!), port: server.port, db: config.dbPath, version });

  const signal = await stopSignal;
  logger.info('stopping', { signal, grace_ms: SHUTDOWN_GRACE_MS });
  const drained = server.stop(false).then(() => true);
  let graceTimer: Timer | undefined;
  const graceOver = new Promise<false>((resolve) => {
    graceTimer = setTimeout(() => resolve(false), SHUTDOWN_GRACE_MS);
  });
  // A second signal means "now": the operator does not want to wait for the grace period.
  const impatient = nextStopSignal().then(() => false as const);
  const finished = await Promise.race([drained, graceOver, impatient]);
  clearTimeout(graceTimer);
  if (!finished) {
    logger.warn('closing connections still in flight', { reason: 'grace period over or second signal' });
    await server.stop(true);
  }
  // Access-log lines are written just after each answer (a setImmediate); let the last ones out first.
  await new Promise((resolve) => setImmediate(resolve));
  const checkpointed = closeStore(store);
  logger.info('stopped', { drained: finished, wal_checkpointed: checkpointed });
  // Lines leave once per event-loop turn; the last ones must be out before the caller exits.
  flushLogs();
  return 0;
}
