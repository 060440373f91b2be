/**
 * One control connection from an `expose` client: authentication, the one tunnel it registers, the
 * visitor streams multiplexed over it, flow control, heartbeats, and its end. A failure of the peer
 * (bad frame, silence, overrun window) ends this connection only, never the server.
 */
import type { ServerWebSocket } from 'bun';
import type { Principal } from '../http/auth.ts';
import type { Logger } from '../lib/logger.ts';
import { generateSubdomain } from './names.ts';
import {
  CLOSE_AUTH_TIMEOUT,
  CLOSE_FORBIDDEN,
  CLOSE_PROTOCOL_ERROR,
  CLOSE_UNAUTHORIZED,
  type ClientToServerMessage,
  decodeControl,
  decodeFrame,
  encodeControl,
  encodeFrame,
  FEATURE_FLOW_CONTROL,
  FLAG_FIN,
  FrameKind,
  GO_AWAY_CLOSE_CODES,
  type GoAwayReason,
  type HeaderPair,
  isValidSubdomain,
  MAX_CONTROL_TEXT_BYTES,
  MAX_FRAME_PAYLOAD_BYTES,
  type RegisterTunnelData,
  type ServerToClientMessage,
} from './protocol.ts';
import type { MemoryTunnelRegistry, RegisteredTunnel } from './registry.ts';
import type { TunnelSettings } from './settings.ts';
import { HttpStream, type StreamOwner } from './stream.ts';
import { WsStream, type WsStreamOwner } from './ws-stream.ts';

/** What a control socket carries in Bun's `ws.data`. */
export interface ControlSocketData {
  kind: 'control';
  session: TunnelSession;
}

/** The services a session uses. */
export interface SessionContext {
  /** The principal behind a credential (API key or session token), or null. */
  authenticate(credential: string): Promise<Principal | null>;
  registry: MemoryTunnelRegistry<LiveTunnel>;
  settings: TunnelSettings;
  now(): number;
  logger: Logger;
  /** The session's socket has closed; forget it. */
  closed(session: TunnelSession): void;
  /** A tunnel has just been registered (TLS on demand orders its host's certificate). */
  registered?(tunnel: LiveTunnel): void;
}

/** A registered tunnel: what the registry, the ingress and the tunnels API see. */
export class LiveTunnel implements RegisteredTunnel {
  bytesIn = 0;
  bytesOut = 0;
  requestCount = 0;
  readonly connectedAtMs: number;

  constructor(
    readonly id: string,
    readonly subdomain: string,
    readonly userId: string,
    readonly keyId: string,
    readonly localPort: number,
    readonly publicUrl: string,
    readonly resumeToken: string,
    readonly session: TunnelSession,
    nowMs: number,
  ) {
    this.connectedAtMs = nowMs;
  }

  /** Visitor streams in flight. */
  get activeStreams(): number {
    return this.session.activeStreams;
  }
}

/** Bytes we let Bun hold in its socket buffer; beyond it data waits in our queue, so control messages never queue behind bulk. */
const SOCKET_LOW_WATER_BYTES = 256 * 1024;
/** Data queued on our side per connection before a writer must wait. */
const QUEUE_LIMIT_BYTES = 1024 * 1024;
/** Messages a client may send while its Auth is being checked (RegisterTunnel right after Auth is normal). */
const MAX_PENDING_MESSAGES = 16;
/** Without flow control: response bytes buffered for visitors per connection before reading pauses. */
const UNCONTROLLED_BUFFER_LIMIT_BYTES = 16 * 1024 * 1024;

type State = 'auth' | 'authenticating' | 'ready' | 'registered' | 'closed';

/** A request to open a stream: the visitor's request line and headers, already prepared for the client. */
export interface StreamRequest {
  method: string;
  path: string;
  headers: HeaderPair[];
}

/** One control connection. */
export class TunnelSession implements StreamOwner, WsStreamOwner {
  principal: Extract<Principal, { kind: 'api_key' }> | undefined;
  tunnel: LiveTunnel | undefined;
  private ws: ServerWebSocket<ControlSocketData> | undefined;
  private state: State = 'auth';
  private flowControl = false;
  private readonly streams = new Map<number, HttpStream>();
  /** Visitor WebSockets passed through, by stream id. */
  private readonly sockets = new Map<number, WsStream>();
  private nextStreamId = 1;
  private connectionSendCredit: number;
  // Response bytes from the client on this connection: received, handed to visitors (or dropped), granted back.
  private connectionReceived = 0;
  private connectionConsumed = 0;
  private connectionGranted = 0;
  private readonly queue: Uint8Array[] = [];
  private queuedBytes = 0;
  private batched: (string | Uint8Array)[] = [];
  private batchedBytes = 0;
  private readonly waiters = new Set<() => void>();
  private pending: string[] = [];
  private lastHeardMs: number;
  private lastSentMs: number;
  private timers: Timer[] = [];
  /** Set when the server ends the connection on purpose: no grace hold follows. */
  private endReason: GoAwayReason | 'protocol' | 'auth' | undefined;
  private readonly streamReceived = new WeakMap<HttpStream | WsStream, { received: number; consumed: number; granted: number }>();

  constructor(
    private readonly ctx: SessionContext,
    /** The client's address, for logs. */
    readonly clientIp: string,
  ) {
    this.connectionSendCredit = ctx.settings.connectionWindowBytes;
    this.lastHeardMs = this.lastSentMs = ctx.now();
  }

  /** Visitor streams in flight: HTTP requests and WebSockets. */
  get activeStreams(): number {
    return this.streams.size + this.sockets.size;
  }

  /** The socket is open: start the Auth timer and the heartbeat. */
  open(ws: ServerWebSocket<ControlSocketData>): void {
    this.ws = ws;
    const { settings } = this.ctx;
    this.timers.push(
      setTimeout(() => {
        if (this.state === 'auth' || this.state === 'authenticating') this.end(CLOSE_AUTH_TIMEOUT, 'authentication timeout', 'auth');
      }, settings.authTimeoutMs),
    );
    // Any frame we send postpones the next Heartbeat, so our silence can last heartbeatMs + one tick.
    // A tick of deadAfterMs / 3 made that 30 s + 15 s = 45 s, exactly when the peer declares us dead;
    // a tenth keeps the worst case near 33 s (and notices a dead peer within deadAfterMs + 3 s).
    const tick = Math.max(5, Math.min(settings.heartbeatMs, settings.deadAfterMs) / 10);
    this.timers.push(setInterval(() => this.heartbeat(), tick));
  }

  /** A WebSocket message from the client. */
  message(data: string | Buffer): void {
    if (this.state === 'closed') return;
    this.lastHeardMs = this.ctx.now();
    if (typeof data === 'string') this.onText(data);
    else this.onBinary(data);
  }

  /** Bun's socket buffer drained: send what waited. */
  drain(): void {
    this.flush();
  }

  /** The socket closed, whoever closed it. */
  closed(code: number): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    for (const timer of this.timers) clearTimeout(timer);
    for (const stream of [...this.streams.values()]) stream.fail({ kind: 'closed' });
    for (const socket of [...this.sockets.values()]) socket.goingAway();
    this.queue.length = 0;
    this.wakeAll();
    if (this.tunnel) {
      // A drop nobody explained keeps the subdomain for its owner a while; a clean close (Ctrl-C,
      // code 1000) or an end we chose (revocation, owner, replacement, protocol) frees it at once.
      const hold = this.endReason === undefined && code !== 1000;
      const now = this.ctx.now();
      this.ctx.registry.release(this.tunnel, hold ? { resumeToken: this.tunnel.resumeToken, untilMs: now + this.ctx.settings.graceMs } : undefined);
      this.ctx.logger.info('tunnel closed', { tunnel_id: this.tunnel.id, subdomain: this.tunnel.subdomain, code, reason: this.endReason ?? (hold ? 'dropped' : 'client'), held: hold });
    }
    this.ctx.closed(this);
  }

  /** Ends the connection for `reason` with GoAway first (revocation, owner, replacement, shutdown). */
  goAway(reason: GoAwayReason): void {
    if (this.state === 'closed' || this.endReason !== undefined) return;
    this.sendControl({ type: 'GoAway', data: { reason } });
    this.end(GO_AWAY_CLOSE_CODES[reason], reason, reason);
  }

  /**
   * Opens a stream for a visitor's request and sends StreamOpen; undefined when the tunnel is at its
   * stream limit or gone.
   */
  openStream(request: StreamRequest): HttpStream | undefined {
    const id = this.nextId();
    if (id === undefined) return undefined;
    const stream = new HttpStream(id, this, this.ctx.settings.streamWindowBytes);
    this.streams.set(id, stream);
    this.streamReceived.set(stream, { received: 0, consumed: 0, granted: 0 });
    this.sendControl({ type: 'StreamOpen', data: { stream_id: id, method: request.method, path: request.path, headers: request.headers } });
    return stream;
  }

  /**
   * Opens a stream for a visitor's WebSocket upgrade and sends WsUpgrade; undefined when the tunnel
   * is at its stream limit or gone.
   */
  openWebSocket(request: Omit<StreamRequest, 'method'>): WsStream | undefined {
    const id = this.nextId();
    if (id === undefined) return undefined;
    const socket = new WsStream(id, this, this.ctx.settings.streamWindowBytes);
    this.sockets.set(id, socket);
    this.streamReceived.set(socket, { received: 0, consumed: 0, granted: 0 });
    this.sendControl({ type: 'WsUpgrade', data: { stream_id: id, path: request.path, headers: request.headers } });
    return socket;
  }

  /** The next stream id (odd, increasing), or undefined at the stream limit or when not registered. */
  private nextId(): number | undefined {
    if (this.state !== 'registered') return undefined;
    const { maxStreams } = this.ctx.settings;
    if (maxStreams > 0 && this.activeStreams >= maxStreams) return undefined;
    const id = this.nextStreamId;
    this.nextStreamId += 2;
    return id;
  }

  /** Request-body bytes of `stream`: DATA frames, the last with FIN when `fin`. */
  async writeBody(stream: HttpStream, payload: Uint8Array, fin: boolean): Promise<boolean> {
    const written = await this.writeFrames(stream, FrameKind.DATA, payload, fin);
    if (written && fin) stream.requestDone = true;
    return written;
  }

  /**
   * Sends `payload` on `stream` as frames of `kind`, split at 64 KiB, waiting for window and queue
   * space. Resolves false when the stream or the connection ended first.
   */
  async writeFrames(stream: HttpStream | WsStream, kind: FrameKind, payload: Uint8Array, fin: boolean): Promise<boolean> {
    let offset = 0;
    do {
      // An empty frame (the FIN of a body-less request) costs no window, so it never waits for one.
      const needsCredit = payload.byteLength > offset;
      await this.until(
        () => stream.finished || this.state === 'closed' || (this.queuedBytes < QUEUE_LIMIT_BYTES && (!needsCredit || this.hasCredit(stream))),
      );
      if (stream.finished || this.state === 'closed') return false;
      const room = this.flowControl ? Math.min(stream.sendCredit, this.connectionSendCredit) : Number.POSITIVE_INFINITY;
      const size = Math.min(payload.byteLength - offset, MAX_FRAME_PAYLOAD_BYTES, room);
      const last = offset + size === payload.byteLength;
      this.sendData(encodeFrame(stream.id, kind, fin && last ? FLAG_FIN : 0, payload.subarray(offset, offset + size)));
      if (this.flowControl) {
        stream.sendCredit -= size;
        this.connectionSendCredit -= size;
      }
      offset += size;
    } while (offset < payload.byteLength);
    return true;
  }

  /** A WS_CLOSE, WS_PING or WS_PONG frame: at most 125 bytes, outside the window. */
  sendSmall(stream: WsStream, kind: FrameKind, payload: Uint8Array): void {
    if (this.state !== 'closed') this.sendData(encodeFrame(stream.id, kind, FLAG_FIN, payload));
  }

  /** Payload bytes crossed the tunnel to (`out`) or from (`in`) a visitor's WebSocket. */
  counted(direction: 'in' | 'out', bytes: number): void {
    if (!this.tunnel) return;
    if (direction === 'in') this.tunnel.bytesIn += bytes;
    else this.tunnel.bytesOut += bytes;
  }

  /** The visitor is gone: tell the client to drop the stream. */
  visitorGone(stream: HttpStream | WsStream): void {
    if (stream.finished) return;
    this.sendControl({ type: 'StreamClose', data: { stream_id: stream.id } });
    stream.fail({ kind: 'closed' });
  }

  /** Tells the client to drop `stream` (the relay ended it: a message too big, an overflow). */
  abandoned(stream: WsStream): void {
    if (this.state !== 'closed') this.sendControl({ type: 'StreamClose', data: { stream_id: stream.id } });
  }

  /**
   * Response bytes were handed to the visitor. Counted as they go, not when the stream ends, so the
   * tunnels API shows a long download's bytes_out while it is under way.
   */
  delivered(_stream: HttpStream, bytes: number): void {
    if (this.tunnel) this.tunnel.bytesOut += bytes;
  }

  /** Response bytes reached the visitor: grant them back once a quarter window has gathered. */
  consumed(stream: HttpStream | WsStream, bytes: number): void {
    const counts = this.streamReceived.get(stream)!;
    counts.consumed += bytes;
    this.connectionConsumed += bytes;
    if (this.flowControl) {
      const quarter = this.ctx.settings.streamWindowBytes / 4;
      if (counts.consumed - counts.granted >= quarter && !stream.finished) {
        this.sendControl({ type: 'WindowUpdate', data: { stream_id: stream.id, bytes: counts.consumed - counts.granted } });
        counts.granted = counts.consumed;
      }
    }
    this.grantConnection();
  }

  /** The stream is over: forget it, and give back to the connection what it will never deliver. */
  ended(stream: HttpStream | WsStream): void {
    if (stream instanceof WsStream) this.sockets.delete(stream.id);
    else {
      this.streams.delete(stream.id);
      // The response is complete but the visitor's body is not (the local service answered early, a
      // 413 say): that direction is abandoned here, so say so, or the client's local request body would
      // never end. Failures need no word: the client caused them, or was told, or is gone.
      if (!stream.failed && !stream.requestDone) this.sendControl({ type: 'StreamClose', data: { stream_id: stream.id } });
    }
    const counts = this.streamReceived.get(stream)!;
    this.connectionConsumed += counts.received - counts.consumed;
    counts.consumed = counts.received;
    this.grantConnection();
    this.wakeAll();
  }

  private hasCredit(stream: HttpStream | WsStream): boolean {
    return !this.flowControl || (stream.sendCredit > 0 && this.connectionSendCredit > 0);
  }

  private grantConnection(): void {
    const { connectionWindowBytes } = this.ctx.settings;
    if (this.flowControl) {
      const due = this.connectionConsumed - this.connectionGranted;
      if (due >= connectionWindowBytes / 4 && this.state !== 'closed') {
        this.sendControl({ type: 'WindowUpdate', data: { stream_id: 0, bytes: due } });
        this.connectionGranted = this.connectionConsumed;
      }
    } else if (this.ws?.isPaused && this.connectionReceived - this.connectionConsumed < UNCONTROLLED_BUFFER_LIMIT_BYTES / 2) {
      this.ws.resume();
    }
  }

  private onText(text: string): void {
    if (text.length > MAX_CONTROL_TEXT_BYTES || Buffer.byteLength(text) > MAX_CONTROL_TEXT_BYTES) {
      return this.protocolError('control message over 64 KiB');
    }
    if (this.state === 'authenticating') {
      if (this.pending.length >= MAX_PENDING_MESSAGES) return this.protocolError('too many messages before authentication');
      this.pending.push(text);
      return;
    }
    const decoded = decodeControl(text, 'client_to_server');
    if (decoded.status === 'protocol_error') return this.protocolError(decoded.error);
    if (this.state === 'auth') {
      if (decoded.status !== 'message' || decoded.message.type !== 'Auth') return this.protocolError('the first message must be Auth');
      void this.authenticate(decoded.message.data.api_key, decoded.message.data.features ?? []);
      return;
    }
    if (decoded.status === 'unknown_type') return;
    this.onMessage(decoded.message);
  }

  private onMessage(message: ClientToServerMessage): void {
    switch (message.type) {
      case 'RegisterTunnel':
        return this.register(message.data);
      case 'StreamResponse': {
        const stream = this.streams.get(message.data.stream_id);
        // respond() keeps the first answer: a repeated StreamResponse changes nothing.
        stream?.respond({ status: message.data.status, headers: message.data.headers });
        return;
      }
      case 'StreamError': {
        const failure = { kind: 'error', error: message.data.error } as const;
        this.streams.get(message.data.stream_id)?.fail(failure);
        this.sockets.get(message.data.stream_id)?.fail(failure);
        return;
      }
      case 'StreamClose':
        this.streams.get(message.data.stream_id)?.fail({ kind: 'closed' });
        this.sockets.get(message.data.stream_id)?.fail({ kind: 'closed' });
        return;
      case 'WsUpgradeAccepted':
        this.sockets.get(message.data.stream_id)?.accept(message.data.protocol);
        return;
      case 'WindowUpdate':
        return this.granted(message.data.stream_id, message.data.bytes);
      // Heartbeat: its arrival was the point. A second Auth: ignored.
    }
  }

  private granted(streamId: number, bytes: number): void {
    if (!this.flowControl) return;
    if (streamId === 0) this.connectionSendCredit += bytes;
    else {
      const stream = this.streams.get(streamId) ?? this.sockets.get(streamId);
      if (!stream) return;
      stream.sendCredit += bytes;
    }
    this.wakeAll();
  }

  private onBinary(data: Buffer): void {
    if (this.state !== 'registered') return this.protocolError(this.state === 'ready' ? 'data before RegisterTunnel' : 'the first message must be Auth');
    const frame = decodeFrame(data);
    if (!frame.ok) return this.protocolError(frame.error);
    const stream = frame.kind === FrameKind.DATA ? this.streams.get(frame.streamId) : this.sockets.get(frame.streamId);
    // Close, ping and pong frames carry at most 125 bytes and sit outside the windows.
    const windowed = frame.kind === FrameKind.DATA || frame.kind === FrameKind.WS_TEXT || frame.kind === FrameKind.WS_BINARY;
    const bytes = windowed ? frame.payload.byteLength : 0;
    if (!stream) {
      // An unknown or finished stream (a visitor who left): dropped, as the protocol says. The client
      // spent connection window on these bytes all the same, so they are given back, or every visitor
      // who leaves mid-response would shrink the connection's window for good.
      this.connectionReceived += bytes;
      this.connectionConsumed += bytes;
      this.grantConnection();
      return;
    }
    const counts = this.streamReceived.get(stream)!;
    counts.received += bytes;
    this.connectionReceived += bytes;
    const { streamWindowBytes, connectionWindowBytes } = this.ctx.settings;
    if (this.flowControl) {
      // A client that sends past its window would make us buffer without bound.
      if (counts.received - counts.granted > streamWindowBytes) return this.protocolError('stream window exceeded');
      if (this.connectionReceived - this.connectionGranted > connectionWindowBytes) return this.protocolError('connection window exceeded');
    } else if (this.connectionReceived - this.connectionConsumed >= UNCONTROLLED_BUFFER_LIMIT_BYTES) {
      this.ws?.pause();
    }
    // Copy: the frame is a view of Bun's buffer, and the visitor may read it much later.
    if (stream instanceof HttpStream) stream.push(frame.payload.slice(), (frame.flags & FLAG_FIN) !== 0);
    else stream.frame(frame.kind, frame.payload.slice(), frame.flags);
  }

  private async authenticate(credential: string, features: string[]): Promise<void> {
    this.state = 'authenticating';
    let principal: Principal | null = null;
    try {
      principal = await this.ctx.authenticate(credential);
    } catch (error) {
      this.ctx.logger.error('tunnel authentication failed', { error: (error as Error).name, detail: (error as Error).message });
    }
    // The socket may have closed (or timed out) while the credential was being checked.
    if ((this.state as State) === 'closed') return;
    if (principal === null || principal.kind !== 'api_key') {
      const error = principal === null ? 'unauthorized' : 'forbidden';
      this.sendControl({ type: 'AuthResult', data: { success: false, user_id: null, error } });
      this.end(principal === null ? CLOSE_UNAUTHORIZED : CLOSE_FORBIDDEN, error, 'auth');
      return;
    }
    this.principal = principal;
    this.flowControl = features.includes(FEATURE_FLOW_CONTROL);
    this.state = 'ready';
    this.sendControl({
      type: 'AuthResult',
      data: { success: true, user_id: principal.userId, error: null, features: this.flowControl ? [FEATURE_FLOW_CONTROL] : [] },
    });
    const pending = this.pending;
    this.pending = [];
    for (const text of pending) this.onText(text);
  }

  private register(data: RegisterTunnelData): void {
    const principal = this.principal!;
    const fail = (error: string, message: string) => this.sendControl({ type: 'TunnelError', data: { error, message } });
    if (this.state === 'registered') return fail('already_registered', 'This connection already has a tunnel');
    const { registry, settings } = this.ctx;
    const now = this.ctx.now();
    let subdomain = data.subdomain ?? undefined;
    if (subdomain === undefined && data.resume_token !== undefined) subdomain = registry.heldFor(principal.userId, data.resume_token, now);
    if (subdomain !== undefined) {
      subdomain = subdomain.toLowerCase();
      if (!isValidSubdomain(subdomain)) return fail('invalid_subdomain', 'A subdomain is 3 to 63 characters of a-z, 0-9 and -, with no - at either end');
      if (settings.reserved.has(subdomain)) return fail('subdomain_reserved', 'This subdomain is reserved on this server');
    }
    // A generated name that happens to be taken is simply drawn again.
    for (let attempt = 0; attempt < 8; attempt++) {
      const name = subdomain ?? generateSubdomain();
      if (subdomain === undefined && (settings.reserved.has(name) || registry.lookup(name, now).state !== 'free')) continue;
      const tunnel = new LiveTunnel(
        // Time-ordered: the tunnels API lists newest first and breaks a tie of connected_at (two
        // tunnels in one millisecond, common) by id, which a random UUID would order at random.
        Bun.randomUUIDv7('hex', now),
        name,
        principal.userId,
        principal.keyId,
        data.local_port,
        settings.publicUrl(name),
        Buffer.from(crypto.getRandomValues(new Uint8Array(18))).toString('base64url'),
        this,
        now,
      );
      const claim = registry.claim(tunnel, settings.maxTunnelsPerUser, now);
      if (!claim.ok) {
        if (claim.error === 'too_many_tunnels') return fail('too_many_tunnels', `At most ${settings.maxTunnelsPerUser} live tunnels per user`);
        return fail('subdomain_taken', 'This subdomain is in use');
      }
      claim.replaced?.session.goAway('replaced');
      this.tunnel = tunnel;
      this.state = 'registered';
      this.sendControl({
        type: 'TunnelReady',
        data: {
          subdomain: name,
          public_url: tunnel.publicUrl,
          tunnel_id: tunnel.id,
          resume_token: tunnel.resumeToken,
          max_streams: settings.maxStreams,
          ...(this.flowControl ? { window: settings.streamWindowBytes } : {}),
        },
      });
      this.ctx.logger.info('tunnel registered', { tunnel_id: tunnel.id, subdomain: name, user_id: principal.userId, api_key_id: principal.keyId, ip: this.clientIp });
      this.ctx.registered?.(tunnel);
      return;
    }
    fail('subdomain_taken', 'Could not find a free generated name; try again');
  }

  private heartbeat(): void {
    const now = this.ctx.now();
    const { deadAfterMs, heartbeatMs } = this.ctx.settings;
    if (now - this.lastHeardMs >= deadAfterMs) {
      // Half-open: a close handshake would never complete. Cut it; the grace hold follows.
      this.ctx.logger.info('tunnel peer silent', { tunnel_id: this.tunnel?.id, silent_ms: now - this.lastHeardMs });
      this.ws?.terminate();
      return;
    }
    if (this.state !== 'auth' && this.state !== 'authenticating' && now - this.lastSentMs >= heartbeatMs) {
      this.sendControl({ type: 'Heartbeat', data: {} });
    }
  }

  private protocolError(why: string): void {
    this.ctx.logger.info('tunnel protocol error', { tunnel_id: this.tunnel?.id, ip: this.clientIp, error: why });
    this.end(CLOSE_PROTOCOL_ERROR, 'protocol error', 'protocol');
  }

  private end(code: number, reason: string, why: NonNullable<TunnelSession['endReason']>): void {
    if (this.state === 'closed') return;
    this.endReason ??= why;
    // What is batched (a GoAway, a failed AuthResult) must leave before the close frame.
    this.sendBatch();
    this.ws?.close(code, reason);
  }

  /** Control messages go straight out: at most SOCKET_LOW_WATER_BYTES of data can be ahead of them. */
  private sendControl(message: ServerToClientMessage): void {
    if (this.state === 'closed' || !this.ws) return;
    this.batch(encodeControl(message));
  }

  private sendData(frame: Uint8Array): void {
    if (this.queue.length === 0 && this.ws && this.ws.getBufferedAmount() + this.batchedBytes < SOCKET_LOW_WATER_BYTES) {
      this.batch(frame);
      return;
    }
    this.queue.push(frame);
    this.queuedBytes += frame.byteLength;
  }

  /**
   * Messages leave in batches, once per event-loop turn, inside one cork: a send outside a WebSocket
   * handler is otherwise a write system call of its own, and a visitor's request alone makes two
   * (StreamOpen, then its body's FIN). Order is kept within the batch.
   */
  private batch(message: string | Uint8Array): void {
    this.batched.push(message);
    this.batchedBytes += typeof message === 'string' ? message.length : message.byteLength;
    if (this.batched.length === 1) setImmediate(() => this.sendBatch());
  }

  private sendBatch(): void {
    const ws = this.ws;
    const batch = this.batched;
    this.batched = [];
    this.batchedBytes = 0;
    if (!ws || this.state === 'closed' || batch.length === 0) return;
    ws.cork(() => {
      for (const message of batch) this.checkSent(ws.send(message));
    });
    // Frames that waited while this batch was counted against the low-water mark may go now; Bun's
    // drain event only follows real backpressure, so it cannot be what moves them.
    if (this.queue.length > 0) this.flush();
  }

  private flush(): void {
    const ws = this.ws;
    while (ws && this.queue.length > 0 && ws.getBufferedAmount() + this.batchedBytes < SOCKET_LOW_WATER_BYTES && this.state !== 'closed') {
      const frame = this.queue.shift()!;
      this.queuedBytes -= frame.byteLength;
      this.batch(frame);
    }
    this.wakeAll();
  }

  /**
   * Bun's send() answers 0 when it dropped the message (backpressure limit reached): a lost frame
   * would corrupt a stream, so the connection ends instead. -1 (queued) and > 0 (sent) are fine.
   */
  private checkSent(result: number): void {
    this.lastSentMs = this.ctx.now();
    if (result === 0) {
      this.ctx.logger.warn('tunnel send dropped; closing the connection', { tunnel_id: this.tunnel?.id });
      this.ws?.terminate();
    }
  }

  private until(ready: () => boolean): Promise<void> {
    if (ready()) return Promise.resolve();
    return new Promise((resolve) => {
      const check = () => {
        if (ready()) {
          this.waiters.delete(check);
          resolve();
        }
      };
      this.waiters.add(check);
    });
  }

  private wakeAll(): void {
    for (const check of [...this.waiters]) check();
  }
}
