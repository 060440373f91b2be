/**
 * The tunnel over time: one connection after another, reconnecting with backoff to the same
 * subdomain (with its resume_token) after a drop, until stopped or refused for good.
 */
import {
  DEFAULT_CONNECTION_WINDOW_BYTES,
  DEFAULT_HEARTBEAT_INTERVAL_MS,
  DEFAULT_PEER_DEAD_AFTER_MS,
  type TunnelErrorData,
  type TunnelReadyData,
} from '../tunnel/protocol.ts';
import { DEFAULT_BACKOFF_BASE_MS, DEFAULT_BACKOFF_MAX_MS, backoffDelayMs } from './backoff.ts';
import { judgeEnd } from './close-reasons.ts';
import { TunnelConnection } from './connection.ts';
import type { Reporter } from './events.ts';
import type { HostHeaderMode } from './headers.ts';
import { DEFAULT_SEND_HIGH_WATER_BYTES } from './sender.ts';
import type { LocalFetch } from './stream-context.ts';
import type { LocalTarget } from './target.ts';

/** The tunnel control channel's path on the server. */
export const CONNECT_PATH = '/api/v1/tunnel/connect';
/** A connection that stayed ready this long resets the backoff: the next drop is retried quickly again. */
export const DEFAULT_STABLE_AFTER_MS = 10_000;
/** TunnelError codes worth retrying on a reconnect: the name may be held by our own dropped tunnel for a moment. */
const RETRYABLE_ON_RECONNECT = new Set(['subdomain_taken', 'too_many_tunnels']);

/** Settings of a TunnelClient. Intervals and sizes have the protocol's defaults; tests shrink them. */
export interface TunnelClientOptions {
  /** The server's base URL, http(s), without a trailing slash. */
  serverUrl: string;
  apiKey: string;
  /** Auth `client`, e.g. `expose/0.1.0`. */
  clientName: string;
  target: LocalTarget;
  /** The subdomain asked for; null lets the server pick one. */
  subdomain: string | null;
  hostHeader?: HostHeaderMode;
  /** The certificates a wss:// server is checked against (system roots plus an extra CA); undefined: the system's. */
  ca?: string[];
  reporter: Reporter;
  /** Ask for the `flow_control` feature (default true; false only to test the fallback). */
  flowControl?: boolean;
  heartbeatIntervalMs?: number;
  deadAfterMs?: number;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  stableAfterMs?: number;
  /** The connection window; the protocol fixes it at 16 MiB, tests use less to reach it quickly. */
  connectionWindowBytes?: number;
  sendHighWaterBytes?: number;
  fetch?: LocalFetch;
  now?: () => number;
  random?: () => number;
}

/** How `run()` ended: stopped on request, or stopped for a reason the user must read. */
export type ClientOutcome = { status: 'stopped' } | { status: 'fatal'; message: string };

/** `ws(s)://host[:port][/prefix]/api/v1/tunnel/connect` from the server's http(s) URL. */
export function connectUrl(serverUrl: string): string {
  return `${serverUrl.replace(/^http/, 'ws')}${CONNECT_PATH}`;
}

/** Keeps one tunnel alive across connections. */
export class TunnelClient {
  private readonly options: Required<Omit<TunnelClientOptions, 'subdomain' | 'ca'>> & { subdomain: string | null; ca?: string[] };
  private connection: TunnelConnection | undefined;
  private stopping = false;
  private wakeBackoff: (() => void) | undefined;
  private attempt = 0;
  private everReady = false;
  private readyAtMs: number | undefined;
  private subdomain: string | null;
  private resumeToken: string | undefined;

  constructor(options: TunnelClientOptions) {
    this.options = {
      hostHeader: 'rewrite',
      flowControl: true,
      heartbeatIntervalMs: DEFAULT_HEARTBEAT_INTERVAL_MS,
      deadAfterMs: DEFAULT_PEER_DEAD_AFTER_MS,
      backoffBaseMs: DEFAULT_BACKOFF_BASE_MS,
      backoffMaxMs: DEFAULT_BACKOFF_MAX_MS,
      stableAfterMs: DEFAULT_STABLE_AFTER_MS,
      connectionWindowBytes: DEFAULT_CONNECTION_WINDOW_BYTES,
      sendHighWaterBytes: DEFAULT_SEND_HIGH_WATER_BYTES,
      fetch: (url, init) => fetch(url, init),
      now: () => Date.now(),
      random: Math.random,
      // An option given as undefined keeps its default.
      ...(Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)) as TunnelClientOptions),
    };
    this.subdomain = options.subdomain;
  }

  /** Connects and keeps the tunnel up; settles when stopped or refused for good. */
  async run(): Promise<ClientOutcome> {
    const reporter = this.options.reporter;
    for (;;) {
      if (this.stopping) return this.stopped();
      const connection = this.connect();
      this.connection = connection;
      const end = await connection.ended;
      this.connection = undefined;
      if (this.stopping) return this.stopped();
      const verdict = judgeEnd(end, this.everReady);
      if (verdict.action === 'stop') {
        reporter.state('Error', verdict.message);
        return { status: 'fatal', message: verdict.message };
      }
      reporter.state('Disconnected', verdict.detail);
      if (this.readyAtMs !== undefined && this.options.now() - this.readyAtMs >= this.options.stableAfterMs) this.attempt = 0;
      this.readyAtMs = undefined;
      const delayMs = this.nextDelayMs();
      reporter.state('Reconnecting', `in ${(delayMs / 1000).toFixed(1)} s`);
      await this.sleep(delayMs);
    }
  }

  /** Closes the connection with 1000 (the server frees the subdomain at once) and ends `run()`. */
  stop(): void {
    if (this.stopping) return;
    this.stopping = true;
    this.wakeBackoff?.();
    this.connection?.close(1000);
  }

  private connect(): TunnelConnection {
    const o = this.options;
    return new TunnelConnection(
      {
        url: connectUrl(o.serverUrl),
        ca: o.ca,
        apiKey: o.apiKey,
        clientName: o.clientName,
        flowControl: o.flowControl,
        subdomain: this.subdomain,
        resumeToken: this.resumeToken,
        target: o.target,
        hostHeader: o.hostHeader,
        fetch: o.fetch,
        heartbeatIntervalMs: o.heartbeatIntervalMs,
        deadAfterMs: o.deadAfterMs,
        connectionWindowBytes: o.connectionWindowBytes,
        sendHighWaterBytes: o.sendHighWaterBytes,
        now: o.now,
      },
      {
        state: (state, detail) => o.reporter.state(state, detail),
        ready: (ready, flowControl) => this.onReady(ready, flowControl),
        request: (entry) => o.reporter.request(entry),
        tunnelError: (error) => this.onTunnelError(error),
      },
    );
  }

  private onReady(ready: TunnelReadyData, flowControl: boolean): void {
    this.everReady = true;
    this.readyAtMs = this.options.now();
    // A reconnect asks for the same name with the token that proves it is ours.
    this.subdomain = ready.subdomain;
    this.resumeToken = ready.resume_token ?? this.resumeToken;
    this.options.reporter.state('Connected', ready.public_url);
    this.options.reporter.ready({
      subdomain: ready.subdomain,
      publicUrl: ready.public_url,
      tunnelId: ready.tunnel_id,
      localOrigin: this.options.target.origin,
      flowControl,
    });
  }

  // First registration: the user asked for this name, so say why it failed and stop. On a
  // reconnect the name may still be held by our own dropped connection: try again, with backoff.
  private onTunnelError(error: TunnelErrorData): number | undefined {
    if (!this.everReady || !RETRYABLE_ON_RECONNECT.has(error.error)) return undefined;
    const delayMs = this.nextDelayMs();
    this.options.reporter.state('Reconnecting', `${error.message} (${error.error}); registering again in ${(delayMs / 1000).toFixed(1)} s`);
    return delayMs;
  }

  private nextDelayMs(): number {
    const o = this.options;
    return backoffDelayMs(this.attempt++, { baseMs: o.backoffBaseMs, maxMs: o.backoffMaxMs }, o.random);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wakeBackoff = done;
    });
  }

  private stopped(): ClientOutcome {
    this.options.reporter.state('Disconnected', 'stopped');
    return { status: 'stopped' };
  }
}
