/**
 * The HTTPS listener, replaced whole when its certificates change. Bun 1.4.5's `server.reload({ tls })`
 * keeps the old certificates and Bun.serve has no SNI callback, so a new certificate means a new
 * Bun.serve on the same port (`reusePort`) with the full list, then `stop(false)` on the old one: it
 * stops accepting, lets its requests in flight finish, and keeps its open WebSockets (tunnel control
 * channels, passed-through visitor sockets) until they close by themselves. Each such server is a
 * generation; retired ones are kept until their last connection is gone, and all are stopped at shutdown.
 */
import type { Server, WebSocketHandler } from 'bun';
import type { Logger } from '../lib/logger.ts';
import type { TlsEntry } from './sni.ts';

/** What every generation is started with, besides the address and the certificates. */
export interface GenerationOptions<T> {
  development: boolean;
  maxRequestBodySize: number;
  fetch(request: Request, server: Server<T>): Response | Promise<Response | undefined> | undefined;
  websocket: WebSocketHandler<T>;
}

export interface HttpsListenerOptions<T> {
  hostname: string;
  /** The port, known before the first generation binds (a 0 resolved by a probe: see probePort). */
  port: number;
  /** The same handlers and limits for every generation, so no generation differs. */
  serveOptions: GenerationOptions<T>;
  /** The certificates to serve now, default first (tlsEntries); empty: nothing to serve yet. */
  entries: () => TlsEntry[];
  logger: Logger;
}

/**
 * Whether `hostname:port` is free, and the port a 0 stands for. The HTTPS generations bind with
 * `reusePort`, under which a second server on the same port would bind silently and share the traffic;
 * this one bind without it makes a port already in use fail loudly at start, as the plain listener does.
 * @throws what Bun throws (EADDRINUSE, EACCES below 1024 without CAP_NET_BIND_SERVICE).
 */
export function probePort(hostname: string, port: number): number {
  const probe = Bun.listen({ hostname, port, exclusive: true, socket: { data() {} } });
  const bound = probe.port;
  probe.stop(true);
  return bound;
}

/** The HTTPS side: the current generation and the retired ones still holding connections. */
export class HttpsListener<T> {
  private current: Server<T> | undefined;
  /** Retired generations, each with the promise of its last connection's end. */
  private readonly retired = new Map<Server<T>, Promise<void>>();
  private swapQueued = false;
  private stopped = false;
  /** Generations started so far (1 = the first). */
  generation = 0;

  constructor(private readonly options: HttpsListenerOptions<T>) {}

  /** The generation that accepts new connections; undefined until the first certificate. */
  get server(): Server<T> | undefined {
    return this.current;
  }

  /** Retired generations still open (their WebSockets, their requests in flight). */
  get retiredCount(): number {
    return this.retired.size;
  }

  /**
   * Asks for a new generation with the certificates as they are at the end of this turn: a manager
   * that installs several certificates at once (loaded from the database at start) causes one swap.
   */
  update(): void {
    if (this.swapQueued || this.stopped) return;
    this.swapQueued = true;
    queueMicrotask(() => {
      this.swapQueued = false;
      this.swap();
    });
  }

  /**
   * Starts a generation with the current certificates now and retires the previous one. A failure
   * (a key that does not match its certificate, the port taken) is logged and the previous generation
   * keeps serving. Returns whether a new generation listens.
   */
  swap(): boolean {
    if (this.stopped) return false;
    const entries = this.options.entries();
    if (entries.length === 0) return false;
    const { hostname, port, logger } = this.options;
    let next: Server<T>;
    try {
      next = Bun.serve<T>({ ...this.options.serveOptions, hostname, port, reusePort: true, tls: entries });
    } catch (error) {
      logger.error('https listener could not start with the new certificates; the previous ones still serve', {
        port,
        error: (error as Error).message,
        names: entries.filter((e) => e.serverName !== undefined).map((e) => e.serverName),
      });
      return false;
    }
    const old = this.current;
    this.current = next;
    this.generation++;
    const names = entries.filter((e) => e.serverName !== undefined).map((e) => e.serverName);
    if (old === undefined) {
      logger.info('https listening', { port, names });
    } else {
      this.retire(old);
      logger.info('https certificates swapped', { port, names, generation: this.generation, retired_open: this.retired.size });
    }
    return true;
  }

  private retire(server: Server<T>): void {
    // Stops accepting at once; resolves when the last connection on it has closed.
    const drained = server.stop(false).then(
      () => void this.retired.delete(server),
      () => void this.retired.delete(server),
    );
    this.retired.set(server, drained);
  }

  /**
   * Stops every generation: without `force`, resolves once their connections have closed by
   * themselves; with it, cuts them.
   */
  async stop(force: boolean): Promise<void> {
    this.stopped = true;
    const all = [...(this.current ? [this.current] : []), ...this.retired.keys()];
    await Promise.all(all.map((server) => server.stop(force)));
  }
}
