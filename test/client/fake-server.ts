/**
 * A fake tunnel server for the client's tests: a Bun.serve WebSocket endpoint speaking the protocol
 * from src/tunnel/protocol.ts, recording everything the client sends, and checking that the
 * client's DATA never exceeds the flow-control windows it was granted.
 */
import type { Server, ServerWebSocket } from 'bun';
import { isFlowControlled } from '../../src/client/flow-control.ts';
import {
  DEFAULT_CONNECTION_WINDOW_BYTES,
  FLAG_FIN,
  FrameKind,
  MAX_FRAME_PAYLOAD_BYTES,
  decodeControl,
  decodeFrame,
  decodeWsClose,
  encodeControl,
  encodeFrame,
  encodeWsClose,
  type ClientToServerMessage,
  type HeaderPair,
  type ServerToClientMessage,
} from '../../src/tunnel/protocol.ts';

/** A binary frame the client sent, payload copied. */
export interface SeenFrame {
  streamId: number;
  kind: number;
  fin: boolean;
  payload: Uint8Array;
}

/** A whole WebSocket message the client relayed (its WS_TEXT or WS_BINARY pieces up to FIN). */
export interface SeenWsMessage {
  kind: 'text' | 'binary';
  bytes: Uint8Array;
}

/** How one stream ended from the client's side. */
export type StreamResult =
  | { kind: 'response'; status: number; headers: HeaderPair[]; body: Uint8Array }
  | { kind: 'error'; error: string; status: number | undefined };

/** Options of handshake(). */
export interface HandshakeOptions {
  /** Features AuthResult accepts (default: all the client asked for). */
  accept?: string[];
  subdomain?: string;
  window?: number;
  resumeToken?: string;
}

type Waiter = () => boolean;

/** One client connection, as the fake server sees it. */
export class FakeConnection {
  readonly messages: ClientToServerMessage[] = [];
  readonly frames: SeenFrame[] = [];
  /** Flow-control breaches found so far (the test asserts this stays empty). */
  readonly violations: string[] = [];
  closeInfo: { code: number; reason: string } | undefined;
  /** Per-stream and connection (key 0) windows for what the client sends; set by handshake() when flow control is on. */
  private flow: { streamWindow: number; granted: Map<number, number>; received: Map<number, number> } | undefined;
  /** What the fake server may still send the client, per stream (key 0: the connection), from the client's WindowUpdates. */
  private clientWindows: { streamWindow: number; sent: Map<number, number>; granted: Map<number, number> } | undefined;
  /** Grant the client back every flow-controlled byte it sends, as a visitor who reads at once would. */
  private autoGrant = false;
  private readonly wsPieces = new Map<number, { kind: number; pieces: Uint8Array[] }>();
  /** Whole WebSocket messages from the client, per stream. */
  readonly wsMessages = new Map<number, SeenWsMessage[]>();
  private waiters = new Set<Waiter>();
  private listeners: Array<(message: ClientToServerMessage) => void> = [];

  constructor(readonly ws: ServerWebSocket<unknown>) {}

  /** Calls `listener` with every control message from now on, before any waitFor() is re-checked. */
  listen(listener: (message: ClientToServerMessage) => void): void {
    this.listeners.push(listener);
  }

  // ─── what the client sent ───

  onText(text: string): void {
    const decoded = decodeControl(text, 'client_to_server');
    if (decoded.status !== 'message') throw new Error(`client sent an invalid control message: ${JSON.stringify(decoded)}`);
    this.messages.push(decoded.message);
    if (decoded.message.type === 'WindowUpdate' && this.clientWindows !== undefined) {
      const { stream_id: id, bytes } = decoded.message.data;
      this.clientWindows.granted.set(id, (this.clientWindows.granted.get(id) ?? 0) + bytes);
    }
    for (const listener of this.listeners) listener(decoded.message);
    this.notify();
  }

  onBinary(bytes: Uint8Array): void {
    const frame = decodeFrame(bytes);
    if (!frame.ok) throw new Error(`client sent an invalid frame: ${frame.error}`);
    const seen = { streamId: frame.streamId, kind: frame.kind, fin: (frame.flags & FLAG_FIN) !== 0, payload: frame.payload.slice() };
    this.frames.push(seen);
    if (frame.kind === FrameKind.WS_TEXT || frame.kind === FrameKind.WS_BINARY) this.onWsPiece(seen);
    // WS_CLOSE, WS_PING and WS_PONG sit outside the windows.
    if (this.flow !== undefined && isFlowControlled(frame.kind) && frame.payload.byteLength > 0) {
      for (const key of [frame.streamId, 0]) {
        const received = (this.flow.received.get(key) ?? 0) + frame.payload.byteLength;
        this.flow.received.set(key, received);
        const granted = this.grantedTo(key);
        if (received > granted) this.violations.push(`${key === 0 ? 'connection' : `stream ${key}`}: ${received} bytes received, ${granted} granted`);
      }
      if (this.autoGrant) {
        this.grant(frame.streamId, frame.payload.byteLength);
        this.grant(0, frame.payload.byteLength);
      }
    }
    this.notify();
  }

  private onWsPiece(frame: SeenFrame): void {
    const message = this.wsPieces.get(frame.streamId) ?? { kind: frame.kind, pieces: [] };
    if (message.kind !== frame.kind) this.violations.push(`stream ${frame.streamId}: a message's pieces changed kind`);
    message.pieces.push(frame.payload);
    this.wsPieces.set(frame.streamId, message);
    if (!frame.fin) return;
    this.wsPieces.delete(frame.streamId);
    const list = this.wsMessages.get(frame.streamId) ?? [];
    list.push({ kind: message.kind === FrameKind.WS_TEXT ? 'text' : 'binary', bytes: Buffer.concat(message.pieces) });
    this.wsMessages.set(frame.streamId, list);
  }

  onClose(code: number, reason: string): void {
    this.closeInfo = { code, reason };
    this.notify();
  }

  /** Settles once `check` returns something other than undefined, re-checked after every event. */
  waitFor<T>(check: () => T | undefined): Promise<T> {
    const now = check();
    if (now !== undefined) return Promise.resolve(now);
    return new Promise((resolve) => {
      const waiter = () => {
        const value = check();
        if (value === undefined) return false;
        resolve(value);
        return true;
      };
      this.waiters.add(waiter);
    });
  }

  /** The `index`-th message of `type` (0: the first). */
  message<T extends ClientToServerMessage['type']>(type: T, index = 0): Promise<Extract<ClientToServerMessage, { type: T }>> {
    return this.waitFor(() => this.messages.filter((m) => m.type === type)[index] as Extract<ClientToServerMessage, { type: T }> | undefined);
  }

  /** Messages of `type` so far. */
  all<T extends ClientToServerMessage['type']>(type: T): Extract<ClientToServerMessage, { type: T }>[] {
    return this.messages.filter((m) => m.type === type) as Extract<ClientToServerMessage, { type: T }>[];
  }

  /** DATA and WebSocket message payload bytes the client has sent on a stream so far. */
  bytesReceived(streamId: number): number {
    return this.frames.filter((f) => f.streamId === streamId && isFlowControlled(f.kind as FrameKind)).reduce((sum, f) => sum + f.payload.byteLength, 0);
  }

  /** The `index`-th whole WebSocket message the client relayed on a stream. */
  wsMessage(streamId: number, index = 0): Promise<SeenWsMessage> {
    return this.waitFor(() => this.wsMessages.get(streamId)?.[index]);
  }

  /** The `count` first messages of a stream, once they are all in. */
  wsMessagesUpTo(streamId: number, count: number): Promise<SeenWsMessage[]> {
    return this.waitFor(() => {
      const list = this.wsMessages.get(streamId) ?? [];
      return list.length >= count ? list.slice(0, count) : undefined;
    });
  }

  /** The client's WS_CLOSE on a stream, decoded (`code` null: an empty close). */
  wsClose(streamId: number): Promise<{ code: number | null; reason: string }> {
    return this.waitFor(() => {
      const frame = this.frames.find((f) => f.streamId === streamId && f.kind === FrameKind.WS_CLOSE);
      if (frame === undefined) return undefined;
      const close = decodeWsClose(frame.payload);
      if (!close.ok) throw new Error(`client sent a bad WS_CLOSE: ${close.error}`);
      return { code: close.code, reason: close.reason };
    });
  }

  /** The payloads of the client's frames of `kind` on a stream so far (WS_PING, WS_PONG...). */
  framesOf(streamId: number, kind: number): Uint8Array[] {
    return this.frames.filter((f) => f.streamId === streamId && f.kind === kind).map((f) => f.payload);
  }

  /** The stream's response once its FIN arrived, or its StreamError. */
  result(streamId: number): Promise<StreamResult> {
    return this.waitFor(() => {
      const error = this.messages.find((m) => m.type === 'StreamError' && m.data.stream_id === streamId);
      const response = this.messages.find((m) => m.type === 'StreamResponse' && m.data.stream_id === streamId);
      if (error?.type === 'StreamError') return { kind: 'error', error: error.data.error, status: response?.type === 'StreamResponse' ? response.data.status : undefined };
      const frames = this.frames.filter((f) => f.streamId === streamId);
      if (response?.type !== 'StreamResponse' || !frames.some((f) => f.fin)) return undefined;
      return { kind: 'response', status: response.data.status, headers: response.data.headers, body: Buffer.concat(frames.map((f) => f.payload)) };
    });
  }

  /** Settles when the client closed (or lost) this connection. */
  closed(): Promise<{ code: number; reason: string }> {
    return this.waitFor(() => this.closeInfo);
  }

  // ─── what the fake server sends ───

  send(message: ServerToClientMessage): void {
    this.ws.send(encodeControl(message));
  }

  sendData(streamId: number, payload: Uint8Array, fin: boolean): void {
    this.ws.send(encodeFrame(streamId, FrameKind.DATA, fin ? FLAG_FIN : 0, payload));
  }

  /** A visitor's WebSocket upgrade. */
  wsUpgrade(streamId: number, path: string, headers: HeaderPair[] = []): void {
    this.send({ type: 'WsUpgrade', data: { stream_id: streamId, path, headers } });
  }

  /**
   * One WebSocket message to the client as pieces of at most 64 KiB, FIN on the last, as a server
   * honouring flow control sends it: never more than the client has granted (stream and connection),
   * waiting for its WindowUpdates. A client that never grants makes this hang (and the test time out).
   */
  async sendWsMessage(streamId: number, message: string | Uint8Array): Promise<void> {
    const kind = typeof message === 'string' ? FrameKind.WS_TEXT : FrameKind.WS_BINARY;
    const bytes = typeof message === 'string' ? new TextEncoder().encode(message) : message;
    let offset = 0;
    do {
      let piece = Math.min(MAX_FRAME_PAYLOAD_BYTES, bytes.byteLength - offset);
      if (this.clientWindows !== undefined && piece > 0) {
        const credit = await this.waitFor(() => {
          const available = Math.min(this.clientCredit(streamId), this.clientCredit(0));
          return available > 0 ? available : undefined;
        });
        piece = Math.min(piece, credit);
        for (const key of [streamId, 0]) this.clientWindows.sent.set(key, (this.clientWindows.sent.get(key) ?? 0) + piece);
      }
      const last = offset + piece === bytes.byteLength;
      this.ws.send(encodeFrame(streamId, kind, last ? FLAG_FIN : 0, bytes.subarray(offset, offset + piece)));
      offset += piece;
    } while (offset < bytes.byteLength);
  }

  /** A WS_CLOSE to the client: no code (empty payload), or code and reason. */
  sendWsClose(streamId: number, code?: number, reason = ''): void {
    this.ws.send(encodeFrame(streamId, FrameKind.WS_CLOSE, 0, encodeWsClose(code, reason)));
  }

  /** A WS_PING or WS_PONG to the client. */
  sendWsControl(streamId: number, kind: typeof FrameKind.WS_PING | typeof FrameKind.WS_PONG, payload: Uint8Array): void {
    this.ws.send(encodeFrame(streamId, kind, 0, payload));
  }

  /** From now on, every flow-controlled byte the client sends is granted straight back (a visitor reading at full speed). */
  grantEverything(): void {
    this.autoGrant = true;
  }

  /** Payload bytes the fake server has sent the client on a stream (0: the connection) and the client has granted back so far. */
  clientWindow(key: number): { sent: number; granted: number } {
    const windows = this.clientWindows!;
    return { sent: windows.sent.get(key) ?? 0, granted: windows.granted.get(key) ?? 0 };
  }

  private clientCredit(key: number): number {
    const windows = this.clientWindows!;
    const initial = key === 0 ? DEFAULT_CONNECTION_WINDOW_BYTES : windows.streamWindow;
    return initial + (windows.granted.get(key) ?? 0) - (windows.sent.get(key) ?? 0);
  }

  /** Answers Auth and RegisterTunnel the way a real server does; resolves once TunnelReady is sent. */
  async handshake(options: HandshakeOptions = {}): Promise<void> {
    const auth = await this.message('Auth');
    const accepted = options.accept ?? auth.data.features ?? [];
    this.send({ type: 'AuthResult', data: { success: true, user_id: 'user-1', error: null, features: accepted } });
    const register = await this.message('RegisterTunnel');
    const subdomain = options.subdomain ?? register.data.subdomain ?? 'brave-otter-3f9a';
    const window = options.window;
    if (accepted.includes('flow_control')) {
      this.flow = { streamWindow: window ?? 1024 * 1024, granted: new Map([[0, DEFAULT_CONNECTION_WINDOW_BYTES]]), received: new Map() };
      this.clientWindows = { streamWindow: window ?? 1024 * 1024, sent: new Map(), granted: new Map() };
    }
    this.send({
      type: 'TunnelReady',
      data: {
        subdomain,
        public_url: `http://${subdomain}.expose.test`,
        tunnel_id: 'tunnel-1',
        resume_token: options.resumeToken ?? 'resume-1',
        max_streams: 256,
        ...(window === undefined ? {} : { window }),
      },
    });
  }

  /** Sets the connection window the fake server checks against (tests that shrink it in the client too). */
  setConnectionWindow(bytes: number): void {
    this.flow?.granted.set(0, bytes);
  }

  /** Grants the client `bytes` more on a stream (0: the connection), and records it for the checks. */
  grant(streamId: number, bytes: number): void {
    if (this.flow !== undefined) this.flow.granted.set(streamId, this.grantedTo(streamId) + bytes);
    this.send({ type: 'WindowUpdate', data: { stream_id: streamId, bytes } });
  }

  /** A visitor request: StreamOpen, then the body as DATA frames (one empty FIN when there is none). */
  open(streamId: number, method: string, path: string, headers: HeaderPair[] = [], body?: Uint8Array): void {
    this.send({ type: 'StreamOpen', data: { stream_id: streamId, method, path, headers } });
    if (body === undefined || body.byteLength === 0) return this.sendData(streamId, new Uint8Array(0), true);
    for (let start = 0; start < body.byteLength; start += 64 * 1024) {
      const end = Math.min(start + 64 * 1024, body.byteLength);
      this.sendData(streamId, body.subarray(start, end), end === body.byteLength);
    }
  }

  private grantedTo(key: number): number {
    const flow = this.flow!;
    return flow.granted.get(key) ?? (key === 0 ? DEFAULT_CONNECTION_WINDOW_BYTES : flow.streamWindow);
  }

  private notify(): void {
    for (const waiter of [...this.waiters]) if (waiter()) this.waiters.delete(waiter);
  }
}

/** The fake server: accepts WebSockets on /api/v1/tunnel/connect at a port the OS picked. */
export class FakeTunnelServer {
  readonly connections: FakeConnection[] = [];
  private readonly server: Server<unknown>;
  private waiters = new Set<() => boolean>();

  constructor() {
    const byWs = new Map<ServerWebSocket<unknown>, FakeConnection>();
    this.server = Bun.serve({
      port: 0,
      hostname: '127.0.0.1',
      fetch: (req, server) => {
        if (new URL(req.url).pathname !== '/api/v1/tunnel/connect') return new Response('not found', { status: 404 });
        return server.upgrade(req, { data: undefined }) ? undefined : new Response('upgrade failed', { status: 400 });
      },
      websocket: {
        open: (ws) => {
          const connection = new FakeConnection(ws);
          byWs.set(ws, connection);
          this.connections.push(connection);
          for (const waiter of [...this.waiters]) if (waiter()) this.waiters.delete(waiter);
        },
        message: (ws, message) => {
          const connection = byWs.get(ws)!;
          if (typeof message === 'string') connection.onText(message);
          else connection.onBinary(message as Uint8Array);
        },
        close: (ws, code, reason) => byWs.get(ws)?.onClose(code, reason),
      },
    });
  }

  /** `http://127.0.0.1:<port>`: the client's --server. */
  get url(): string {
    return `http://127.0.0.1:${this.server.port}`;
  }

  /** The `index`-th connection (0: the first), once it is open. */
  connection(index = 0): Promise<FakeConnection> {
    const found = () => this.connections[index];
    const now = found();
    if (now !== undefined) return Promise.resolve(now);
    return new Promise((resolve) => {
      this.waiters.add(() => {
        const connection = found();
        if (connection === undefined) return false;
        resolve(connection);
        return true;
      });
    });
  }

  stop(): void {
    this.server.stop(true);
  }
}
