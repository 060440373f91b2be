/**
 * One WebSocket to the server: Auth, RegisterTunnel, then the streams it carries, heartbeats and
 * the liveness watch, until it ends. Reconnecting is the TunnelClient's business, not this one's.
 */
import {
  CLOSE_PROTOCOL_ERROR,
  FEATURE_FLOW_CONTROL,
  DEFAULT_STREAM_WINDOW_BYTES,
  decodeControl,
  decodeFrame,
  type ServerToClientMessage,
  type TunnelErrorData,
  type TunnelReadyData,
} from '../tunnel/protocol.ts';
import type { ClientState, RequestLogEntry } from './events.ts';
import { GrantBatcher, SendWindow, isFlowControlled } from './flow-control.ts';
import type { HostHeaderMode } from './headers.ts';
import { HttpStream } from './http-stream.ts';
import { FrameSender } from './sender.ts';
import type { ConnectionFlow, LocalFetch, RelayStream, StreamContext } from './stream-context.ts';
import type { LocalTarget } from './target.ts';
import { openWebSocketStream } from './ws-upgrade.ts';

/** How long a deliberate close waits for the server's close frame before dropping the socket, in ms. */
const CLOSE_HANDSHAKE_WAIT_MS = 1_000;

/** Everything one connection needs; the TunnelClient builds it for each attempt. */
export interface ConnectionOptions {
  /** `ws(s)://…/api/v1/tunnel/connect`. */
  url: string;
  /** For wss://: the certificates to check the server's against; undefined: the system's roots. Always verified. */
  ca?: string[];
  apiKey: string;
  /** Auth `client`, e.g. `expose/0.1.0`. */
  clientName: string;
  /** Whether to ask for `flow_control`. */
  flowControl: boolean;
  subdomain: string | null;
  resumeToken: string | undefined;
  target: LocalTarget;
  hostHeader: HostHeaderMode;
  fetch: LocalFetch;
  heartbeatIntervalMs: number;
  deadAfterMs: number;
  connectionWindowBytes: number;
  sendHighWaterBytes: number;
  now(): number;
}

/** What a connection tells its owner while it lives. */
export interface ConnectionEvents {
  state(state: ClientState, detail?: string): void;
  ready(ready: TunnelReadyData, flowControl: boolean): void;
  request(entry: RequestLogEntry): void;
  /** TunnelError: the delay before registering again on this connection, or undefined to give up (the connection then ends). */
  tunnelError(error: TunnelErrorData): number | undefined;
}

/** How a connection ended, for the owner to decide between reconnecting and stopping. */
export type ConnectionEnd =
  | {
      kind: 'closed';
      code: number;
      reason: string;
      /** The GoAway reason that came before the close, if any. */
      goAway: string | undefined;
      /** The socket opened (false: the server could not be reached or refused the upgrade). */
      opened: boolean;
      authenticated: boolean;
      /** Set when the socket failed, e.g. `Failed to connect` or `Expected 101 status code: 404`. */
      failure: string | undefined;
    }
  | { kind: 'dead'; silentMs: number }
  | { kind: 'auth_failed'; error: string }
  | { kind: 'tunnel_error'; error: string; message: string }
  | { kind: 'protocol_error'; error: string }
  | { kind: 'stopped' };

/** One connection attempt, from the WebSocket's opening to its end. */
export class TunnelConnection {
  /** Settles once, when the connection is over and everything of it is cleaned up. */
  readonly ended: Promise<ConnectionEnd>;
  private settle!: (end: ConnectionEnd) => void;
  private readonly ws: WebSocket;
  private readonly sender: FrameSender;
  private readonly streams = new Map<number, RelayStream>();
  private flow: ConnectionFlow | undefined;
  private flowAccepted = false;
  private authenticated = false;
  private ready = false;
  private opened = false;
  private goAway: string | undefined;
  private failure: string | undefined;
  private lastHeardAtMs: number;
  private heartbeatTimer: ReturnType<typeof setInterval> | undefined;
  private livenessTimer: ReturnType<typeof setTimeout> | undefined;
  private registerTimer: ReturnType<typeof setTimeout> | undefined;
  private closeTimer: ReturnType<typeof setTimeout> | undefined;
  private over = false;
  private endWhenClosed: ConnectionEnd | undefined;
  private readonly streamContext: StreamContext;

  constructor(
    private readonly options: ConnectionOptions,
    private readonly events: ConnectionEvents,
  ) {
    this.ended = new Promise((resolve) => (this.settle = resolve));
    this.lastHeardAtMs = options.now();
    events.state('Connecting', options.url);
    // No permessage-deflate: bodies are often compressed already, and the CPU is better spent relaying.
    this.ws = new WebSocket(options.url, { perMessageDeflate: false, ...(options.ca !== undefined ? { tls: { ca: options.ca } } : {}) } as Bun.WebSocketOptions);
    this.ws.binaryType = 'arraybuffer';
    this.sender = new FrameSender(this.ws, options.sendHighWaterBytes);
    this.streamContext = {
      sender: this.sender,
      flow: undefined,
      target: options.target,
      hostHeader: options.hostHeader,
      fetch: options.fetch,
      now: options.now,
      logRequest: (entry) => this.events.request(entry),
      forget: (streamId) => this.streams.delete(streamId),
    };
    this.ws.addEventListener('open', () => this.onOpen());
    this.ws.addEventListener('message', (event) => this.onMessage(event.data));
    this.ws.addEventListener('error', (event) => {
      this.failure ??= (event as ErrorEvent).message || 'WebSocket error';
    });
    this.ws.addEventListener('close', (event) => this.onClose(event.code, event.reason));
    // The watch starts now: it also covers a connect or an Auth answer that never comes.
    this.watchLiveness();
  }

  /** Ends the connection on purpose. Code 1000 tells the server to free the subdomain at once. */
  close(code = 1000): void {
    if (this.over) return;
    this.endWhenClosed ??= { kind: 'stopped' };
    this.closeSocket(code);
  }

  private onOpen(): void {
    this.opened = true;
    this.heard();
    this.events.state('Authenticating');
    try {
      this.sender.control({
        type: 'Auth',
        data: {
          api_key: this.options.apiKey,
          client: this.options.clientName,
          features: this.options.flowControl ? [FEATURE_FLOW_CONTROL] : [],
        },
      });
    } catch {
      // Only a key the protocol cannot carry gets here (the command line checks it first).
      this.end({ kind: 'auth_failed', error: 'unauthorized' }, 1000);
    }
  }

  private onMessage(data: unknown): void {
    if (this.over) return;
    this.heard();
    if (typeof data === 'string') return this.onControl(data);
    const frame = decodeFrame(data as ArrayBuffer);
    if (!frame.ok) return this.protocolError(frame.error);
    const stream = this.streams.get(frame.streamId);
    if (stream !== undefined) stream.onFrame(frame);
    // A frame for a stream we no longer know is dropped, but the server charged its connection
    // window for it: return those bytes, or every abandoned upload would shrink the window for good.
    else if (isFlowControlled(frame.kind)) this.flow?.receiveGrants.consumed(frame.payload.byteLength);
  }

  private onControl(text: string): void {
    const decoded = decodeControl(text, 'server_to_client');
    if (decoded.status === 'unknown_type') return; // a newer server's extension
    if (decoded.status === 'protocol_error') return this.protocolError(decoded.error);
    this.dispatch(decoded.message);
  }

  private dispatch(message: ServerToClientMessage): void {
    switch (message.type) {
      case 'AuthResult':
        if (this.authenticated) return;
        if (!message.data.success) return this.end({ kind: 'auth_failed', error: message.data.error }, 1000);
        this.authenticated = true;
        this.flowAccepted = this.options.flowControl && (message.data.features ?? []).includes(FEATURE_FLOW_CONTROL);
        this.startHeartbeats();
        return this.register();
      case 'TunnelReady':
        return this.onReady(message.data);
      case 'TunnelError':
        return this.onTunnelError(message.data);
      case 'StreamOpen': {
        const id = message.data.stream_id;
        if (!this.ready) return;
        // Ids are never reused on a connection: a second StreamOpen for a live id is a broken server.
        if (this.streams.has(id)) return this.protocolError(`StreamOpen for stream ${id}, which is open`);
        this.streams.set(id, new HttpStream(this.streamContext, message.data));
        return;
      }
      case 'WsUpgrade': {
        if (!this.ready || this.streams.has(message.data.stream_id)) return;
        const stream = openWebSocketStream(this.streamContext, message.data);
        if (stream !== undefined) this.streams.set(message.data.stream_id, stream);
        return;
      }
      case 'StreamClose':
        return this.streams.get(message.data.stream_id)?.onRemoteEnd(undefined);
      case 'StreamError':
        return this.streams.get(message.data.stream_id)?.onRemoteEnd(message.data.error);
      case 'WindowUpdate':
        if (message.data.stream_id === 0) this.flow?.sendWindow.grant(message.data.bytes);
        else this.streams.get(message.data.stream_id)?.onWindowUpdate(message.data.bytes);
        return;
      case 'GoAway':
        this.goAway = message.data.reason;
        return;
      case 'Heartbeat':
        return; // heard() has counted it
    }
  }

  private register(): void {
    this.events.state('Registering', this.options.subdomain ?? undefined);
    this.sender.control({
      type: 'RegisterTunnel',
      data: {
        subdomain: this.options.subdomain,
        local_port: this.options.target.port,
        ...(this.options.resumeToken === undefined ? {} : { resume_token: this.options.resumeToken }),
      },
    });
  }

  private onReady(ready: TunnelReadyData): void {
    if (this.ready || !this.authenticated) return;
    this.ready = true;
    if (this.flowAccepted) {
      // Both directions of the connection start with a full window once the tunnel is ready.
      this.flow = {
        streamWindowBytes: ready.window ?? DEFAULT_STREAM_WINDOW_BYTES,
        sendWindow: new SendWindow(this.options.connectionWindowBytes),
        receiveGrants: new GrantBatcher(this.options.connectionWindowBytes, (bytes) =>
          this.sender.control({ type: 'WindowUpdate', data: { stream_id: 0, bytes } }),
        ),
      };
      this.streamContext.flow = this.flow;
    }
    this.events.ready(ready, this.flowAccepted);
  }

  private onTunnelError(error: TunnelErrorData): void {
    if (this.ready || !this.authenticated || this.registerTimer !== undefined) return;
    const retryInMs = this.events.tunnelError(error);
    if (retryInMs === undefined) return this.end({ kind: 'tunnel_error', error: error.error, message: error.message }, 1000);
    // The connection stays open for another try (the spec's TunnelError contract).
    this.registerTimer = setTimeout(() => {
      this.registerTimer = undefined;
      if (!this.over) this.register();
    }, retryInMs);
  }

  private startHeartbeats(): void {
    this.heartbeatTimer = setInterval(() => this.sender.control({ type: 'Heartbeat', data: {} }), this.options.heartbeatIntervalMs);
  }

  private heard(): void {
    this.lastHeardAtMs = this.options.now();
  }

  // One timer, re-armed for the time left rather than reset on every frame: a busy connection
  // costs no timer churn, and silence is still caught within deadAfterMs.
  private watchLiveness(): void {
    const silentMs = this.options.now() - this.lastHeardAtMs;
    if (silentMs >= this.options.deadAfterMs) {
      // A dead peer will not answer a close handshake: drop the socket without one.
      this.end({ kind: 'dead', silentMs }, undefined);
      return;
    }
    this.livenessTimer = setTimeout(() => this.watchLiveness(), this.options.deadAfterMs - silentMs);
  }

  private protocolError(error: string): void {
    this.end({ kind: 'protocol_error', error }, CLOSE_PROTOCOL_ERROR);
  }

  /**
   * Ends the connection with `end` once the socket is closed: with a close frame of `code`, or
   * dropped at once when `code` is undefined.
   */
  private end(end: ConnectionEnd, code: number | undefined): void {
    if (this.over) return;
    this.endWhenClosed ??= end;
    if (code === undefined) {
      this.ws.terminate();
      this.finish(this.endWhenClosed);
    } else {
      this.closeSocket(code);
    }
  }

  private closeSocket(code: number): void {
    try {
      this.ws.close(code);
    } catch {
      // Not open yet or already closing: terminate below settles it.
    }
    // The close event normally ends things; a server that never answers the close is dropped.
    this.closeTimer ??= setTimeout(() => {
      this.ws.terminate();
      this.finish(this.endWhenClosed ?? { kind: 'stopped' });
    }, CLOSE_HANDSHAKE_WAIT_MS);
  }

  private onClose(code: number, reason: string): void {
    this.finish(
      this.endWhenClosed ?? {
        kind: 'closed',
        code,
        reason,
        goAway: this.goAway,
        opened: this.opened,
        authenticated: this.authenticated,
        failure: this.failure,
      },
    );
  }

  private finish(end: ConnectionEnd): void {
    if (this.over) return;
    this.over = true;
    clearInterval(this.heartbeatTimer);
    clearTimeout(this.livenessTimer);
    clearTimeout(this.registerTimer);
    clearTimeout(this.closeTimer);
    this.sender.close();
    this.flow?.sendWindow.close();
    // A dropped connection ends every stream of it at once (the server does the same on its side).
    for (const stream of [...this.streams.values()]) stream.abort();
    this.streams.clear();
    this.settle(end);
  }
}
