/**
 * Server-side tunnel tests: a real server on 127.0.0.1:0 (in-process, `listen()`), users and API keys
 * made through the real API, and a scripted protocol client that speaks src/tunnel/protocol.ts over a
 * real WebSocket. Nothing of the relay is mocked: the client sees exactly what the server sends.
 */
import { Database } from 'bun:sqlite';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config.ts';
import { openDb, type DbHandle } from '../../src/db/client.ts';
import { migrate } from '../../src/db/migrate.ts';
import type { Clock } from '../../src/lib/clock.ts';
import { createLogger } from '../../src/lib/logger.ts';
import { listen, type RunningServer } from '../../src/server.ts';
import {
  type ClientToServerMessage,
  decodeControl,
  decodeFrame,
  encodeControl,
  encodeFrame,
  FLAG_FIN,
  FrameKind,
  type HeaderPair,
  MAX_FRAME_PAYLOAD_BYTES,
  type RegisterTunnelData,
  type ServerToClientMessage,
  type StreamOpenData,
  type TunnelErrorData,
  type TunnelReadyData,
} from '../../src/tunnel/protocol.ts';
import type { TunnelSettings } from '../../src/tunnel/settings.ts';
import { CHEAP_HASHER, GOOD_PASSWORD, TEST_SECRET, uniqueEmail } from './app.ts';

/** How long any single awaited event may take before the test fails with a message saying what was awaited. */
export const EVENT_TIMEOUT_MS = 3000;
/** The tunnel domain every test server uses. */
export const DOMAIN = 'expose.test';

const encoder = new TextEncoder();

/** Bytes of a string or bytes. */
export const bytesOf = (body: string | Uint8Array): Uint8Array => (typeof body === 'string' ? encoder.encode(body) : body);

/** Concatenates chunks. */
export function concat(chunks: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.byteLength, 0));
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.byteLength;
  }
  return out;
}

/** The value of header `name` (case-insensitive) among pairs: all values, in order. */
export function headerValues(pairs: readonly HeaderPair[], name: string): string[] {
  const lower = name.toLowerCase();
  return pairs.filter(([n]) => n.toLowerCase() === lower).map(([, v]) => v);
}

/** A user made through the API: its session token (JWT), one API key and their ids. */
export interface TestUser {
  email: string;
  token: string;
  userId: string;
  key: string;
  keyId: string;
}

/** How a test server is started. */
export interface TunnelServerOptions {
  /** Environment-style settings over the test defaults (rate limits off, domain expose.test). */
  env?: Record<string, string>;
  /** Tunnel intervals and windows in ms/bytes. */
  tunnel?: Partial<TunnelSettings>;
  /** A file database (in a fresh temp dir) instead of `:memory:`, so a second connection can write to it. */
  fileDb?: boolean;
  clock?: Clock;
}

/** A running server with what tests need around it. */
export interface TunnelTestServer {
  running: RunningServer;
  port: number;
  /** `http://127.0.0.1:{port}`: the API host. */
  base: string;
  db: DbHandle;
  /** The database file when `fileDb`, for a second connection. */
  dbPath: string | undefined;
  /** Every log line, JSON. */
  logs: string[];
  /** An API request on the API host, with an optional Bearer credential. */
  api(method: string, path: string, init?: { credential?: string; json?: unknown; headers?: Record<string, string> }): Promise<Response>;
  /** Registers a user and creates one API key, through the API. */
  newUser(): Promise<TestUser>;
  /** Creates another API key for `token`'s user. */
  newKey(token: string): Promise<{ key: string; keyId: string }>;
  /** A visitor's request to `host` (e.g. `myapp.expose.test`), sent to this server's socket. */
  visit(host: string, path?: string, init?: RequestInit & { headers?: Record<string, string> }): Promise<Response>;
  /** Opens a control WebSocket (not yet authenticated). */
  connect(): Promise<ScriptedClient>;
  /** Opens a control WebSocket, authenticates with `key`, registers `subdomain` (null: generated). */
  tunnel(key: string, subdomain: string | null, options?: { features?: string[] }): Promise<{ client: ScriptedClient; ready: TunnelReadyData }>;
  /** Resolves with the first log entry matching `match`, waiting for it: the server's log is the test's event source for what it does not tell the client. */
  untilLog(match: (entry: Record<string, unknown>) => boolean, what: string, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Log lines at level error (an unhandled failure would be logged there). */
  errorLogs(): string[];
  stop(): Promise<void>;
}

/** Starts a server on 127.0.0.1:0 with tunnel domain expose.test, rate limits off, cheap hashing. */
export async function startTunnelServer(options: TunnelServerOptions = {}): Promise<TunnelTestServer> {
  const dir = options.fileDb ? mkdtempSync(join(tmpdir(), 'expose-tunnel-test-')) : undefined;
  const dbPath = dir === undefined ? undefined : join(dir, 'expose.db');
  const config = loadConfig({
    EXPOSE_DB: dbPath ?? ':memory:',
    EXPOSE_PORT: '0',
    EXPOSE_HOST: '127.0.0.1',
    EXPOSE_TUNNEL_DOMAIN: DOMAIN,
    EXPOSE_JWT_SECRET: TEST_SECRET,
    EXPOSE_RATE_LIMIT_AUTH: '0',
    EXPOSE_RATE_LIMIT_API: '0',
    ...options.env,
  });
  const db = openDb(dbPath ?? ':memory:');
  migrate(db.db);
  // Log lines double as events: the server logs when it notices a drop, and tests can await that.
  const lines: string[] = [];
  const logWaiters = new Set<() => void>();
  const logger = createLogger('debug', (line) => {
    lines.push(line);
    for (const waiter of [...logWaiters]) waiter();
  });
  const running = listen({
    config,
    db,
    jwtSecret: TEST_SECRET,
    logger,
    hasher: CHEAP_HASHER(),
    ...(options.clock ? { clock: options.clock } : {}),
    tunnel: options.tunnel,
  });
  const port = running.port;
  const base = `http://127.0.0.1:${port}`;
  const clients = new Set<ScriptedClient>();

  const api: TunnelTestServer['api'] = (method, path, init = {}) => {
    const headers: Record<string, string> = { ...init.headers };
    if (init.credential !== undefined) headers.authorization = `Bearer ${init.credential}`;
    let body: string | undefined;
    if (init.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(init.json);
    }
    return fetch(`${base}${path}`, { method, headers, body });
  };

  const newKey: TunnelTestServer['newKey'] = async (token) => {
    const res = await api('POST', '/api/v1/api-keys', { credential: token, json: { name: 'tunnel test' } });
    if (res.status !== 201) throw new Error(`create key: ${res.status} ${await res.text()}`);
    const created = (await res.json()) as { key: string; api_key: { id: string } };
    return { key: created.key, keyId: created.api_key.id };
  };

  const newUser: TunnelTestServer['newUser'] = async () => {
    const email = uniqueEmail();
    const res = await api('POST', '/api/v1/auth/register', { json: { email, password: GOOD_PASSWORD } });
    if (res.status !== 201) throw new Error(`register: ${res.status} ${await res.text()}`);
    const { token, user } = (await res.json()) as { token: string; user: { id: string } };
    return { email, token, userId: user.id, ...(await newKey(token)) };
  };

  const connect = async () => {
    const client = await ScriptedClient.open(`ws://127.0.0.1:${port}/api/v1/tunnel/connect`);
    clients.add(client);
    return client;
  };

  const tunnel: TunnelTestServer['tunnel'] = async (key, subdomain, opts = {}) => {
    const client = await connect();
    const auth = await client.auth(key, opts.features);
    if (!auth.success) throw new Error(`auth failed: ${auth.error}`);
    const answer = await client.register({ subdomain, local_port: 3000 });
    if (answer.type !== 'TunnelReady') throw new Error(`register failed: ${answer.data.error}`);
    return { client, ready: answer.data };
  };

  return {
    running,
    port,
    base,
    db,
    dbPath,
    logs: lines,
    untilLog(match, what, timeoutMs = EVENT_TIMEOUT_MS) {
      const find = () => lines.map((line) => JSON.parse(line) as Record<string, unknown>).find(match);
      const found = find();
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          logWaiters.delete(waiter);
          reject(new Error(`timed out after ${timeoutMs} ms waiting for the log line: ${what}`));
        }, timeoutMs);
        const waiter = () => {
          const entry = find();
          if (!entry) return;
          clearTimeout(timer);
          logWaiters.delete(waiter);
          resolve(entry);
        };
        logWaiters.add(waiter);
      });
    },
    api,
    newUser,
    newKey,
    visit: (host, path = '/', init = {}) => fetch(`${base}${path}`, { ...init, headers: { ...init.headers, host } }),
    connect,
    tunnel,
    errorLogs: () => lines.filter((line) => (JSON.parse(line) as { level: string }).level === 'error'),
    async stop() {
      for (const client of clients) client.terminate();
      running.relay.shutdown();
      await running.server.stop(true);
      db.sqlite.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A second SQLite connection to a file database, as an operator's CLI or sqlite3 would be. */
export function secondConnection(dbPath: string): Database {
  const sqlite = new Database(dbPath);
  sqlite.run('PRAGMA busy_timeout = 5000');
  return sqlite;
}

// ───────────────────────────── the scripted client ─────────────────────────────

type ServerType = ServerToClientMessage['type'];
/** The data of server message type `K`. */
export type DataOf<K extends ServerType> = Extract<ServerToClientMessage, { type: K }>['data'];

/** One thing the client received, in order. */
export type Received =
  | { kind: 'control'; message: ServerToClientMessage; atMs: number }
  | { kind: 'frame'; streamId: number; frameKind: number; flags: number; payload: Uint8Array; atMs: number };

/** How the socket ended. */
export interface CloseInfo {
  code: number;
  reason: string;
  atMs: number;
}

/** What the scripted client knows of one stream the server opened. */
export interface ClientStream {
  id: number;
  open: StreamOpenData;
  /** Every request-body DATA frame as received. */
  frames: { bytes: number; fin: boolean }[];
  chunks: Uint8Array[];
  finCount: number;
  /** The server sent StreamClose for it. */
  closedByServer: boolean;
  /** Request-body bytes received and not yet granted back (flow control). */
  ungranted: number;
  /** The largest `ungranted` ever seen: never above the window if the server keeps to it. */
  maxUngranted: number;
  /** Response-body bytes the client may still send (flow control). */
  sendCredit: number;
  /** Response-body bytes the client has sent. */
  sent: number;
}

/** A visitor's request as a handler sees it. */
export interface ScriptedRequest {
  stream: ClientStream;
  method: string;
  path: string;
  headers: HeaderPair[];
  /** The first value of header `name`. */
  header(name: string): string | undefined;
  /** The whole request body, once its FIN arrived. */
  body(): Promise<Uint8Array>;
}

/** What a handler answers. */
export interface ScriptedResponse {
  status: number;
  headers?: HeaderPair[];
  /** Sent in ≤64 KiB DATA frames, then FIN; an array is sent piece by piece. */
  body?: string | Uint8Array | (string | Uint8Array)[];
  /** Leave the body open (no FIN): a stream that never ends. */
  noFin?: boolean;
}

/** A handler's answer: a response, a StreamError code, or nothing (the test answers by hand). */
export type HandlerResult = ScriptedResponse | { streamError: string } | undefined;

/** A protocol client driven by the test. Every awaited event fails with a description after EVENT_TIMEOUT_MS. */
export class ScriptedClient {
  readonly received: Received[] = [];
  readonly streams = new Map<number, ClientStream>();
  closeInfo: CloseInfo | undefined;
  readonly closed: Promise<CloseInfo>;
  /** Flow control was accepted by the server. */
  flowControl = false;
  /** The per-stream window from TunnelReady. */
  window = 0;
  /** Grant request-body bytes back as they arrive (flow control); tests that count windows turn it off. */
  autoGrant = true;
  /** Answer each Heartbeat from the server with one, as a live client does. */
  answerHeartbeats = false;
  /** Request-body bytes received on all streams and not yet granted back, and the most ever (flow control). */
  connectionUngranted = 0;
  maxConnectionUngranted = 0;
  /** Errors thrown by handlers; a test asserts it stays empty. */
  readonly handlerErrors: unknown[] = [];
  private readonly taken = new Set<Received>();
  private readonly waiters = new Set<() => void>();
  private handler: ((request: ScriptedRequest) => HandlerResult | Promise<HandlerResult>) | undefined;
  private connectionCredit = Number.POSITIVE_INFINITY;

  private constructor(readonly ws: WebSocket) {
    ws.binaryType = 'arraybuffer';
    this.closed = new Promise((resolve) => {
      ws.addEventListener('close', (event) => {
        this.closeInfo = { code: event.code, reason: event.reason, atMs: performance.now() };
        resolve(this.closeInfo);
        this.wake();
      });
    });
    ws.addEventListener('message', (event) => this.onMessage(event.data as string | ArrayBuffer));
  }

  /** Opens a WebSocket to `url`; resolves once open. */
  static open(url: string): Promise<ScriptedClient> {
    const ws = new WebSocket(url);
    const client = new ScriptedClient(ws);
    return new Promise((resolve, reject) => {
      ws.addEventListener('open', () => resolve(client), { once: true });
      ws.addEventListener('error', () => reject(new Error(`WebSocket to ${url} failed`)), { once: true });
    });
  }

  get isOpen(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  send(message: ClientToServerMessage): void {
    this.ws.send(encodeControl(message));
  }

  sendText(text: string): void {
    this.ws.send(text);
  }

  sendBinary(bytes: Uint8Array): void {
    this.ws.send(bytes);
  }

  sendFrame(streamId: number, kind: number, flags: number, payload: Uint8Array = new Uint8Array(0)): void {
    this.ws.send(encodeFrame(streamId, kind as FrameKind, flags, payload));
  }

  /** A clean close (1000 by default). */
  close(code = 1000): void {
    this.ws.close(code);
  }

  /** Drops the TCP connection without a close handshake, as a crashed client or a dead network would. */
  terminate(): void {
    (this.ws as unknown as { terminate(): void }).terminate();
  }

  /** Resolves with `check()`'s first non-undefined value, re-checked on every arrival and on close. */
  until<T>(check: () => T | undefined | false, what: string, timeoutMs = EVENT_TIMEOUT_MS): Promise<T> {
    const first = check();
    if (first !== undefined && first !== false) return Promise.resolve(first);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const waiter = () => {
        const value = check();
        if (value === undefined || value === false) return;
        clearTimeout(timer);
        this.waiters.delete(waiter);
        resolve(value);
      };
      this.waiters.add(waiter);
    });
  }

  /** The first not-yet-taken control message of `type` (matching `where`), waiting for it if need be; it is then taken. */
  async next<K extends ServerType>(type: K, where: (data: DataOf<K>) => boolean = () => true, timeoutMs = EVENT_TIMEOUT_MS): Promise<DataOf<K>> {
    const find = (): { data: DataOf<K> } | undefined => {
      for (const item of this.received) {
        if (item.kind !== 'control' || item.message.type !== type || this.taken.has(item)) continue;
        const data = item.message.data as DataOf<K>;
        if (!where(data)) continue;
        this.taken.add(item);
        return { data };
      }
      return undefined;
    };
    const found = await this.until(find, `${type}`, timeoutMs);
    return found.data;
  }

  /** Control messages of `type` received so far (taken or not). */
  all<K extends ServerType>(type: K): DataOf<K>[] {
    const out: DataOf<K>[] = [];
    for (const item of this.received) if (item.kind === 'control' && item.message.type === type) out.push(item.message.data as DataOf<K>);
    return out;
  }

  /** Resolves when the socket closes (or has closed). */
  waitClosed(timeoutMs = EVENT_TIMEOUT_MS): Promise<CloseInfo> {
    return this.until(() => this.closeInfo, 'the connection to close', timeoutMs);
  }

  /** Sends Auth and returns AuthResult's data. */
  async auth(apiKey: string, features?: string[]) {
    this.send({ type: 'Auth', data: { api_key: apiKey, client: 'scripted-test/1', ...(features ? { features } : {}) } });
    const result = await this.next('AuthResult');
    if (result.success) this.flowControl = (result.features ?? []).includes('flow_control');
    return result;
  }

  /** Sends RegisterTunnel; returns the TunnelReady or TunnelError that answers it. */
  async register(data: RegisterTunnelData): Promise<{ type: 'TunnelReady'; data: TunnelReadyData } | { type: 'TunnelError'; data: TunnelErrorData }> {
    const before = this.received.length;
    this.send({ type: 'RegisterTunnel', data });
    const item = await this.until(
      () =>
        this.received.slice(before).find(
          (r) => r.kind === 'control' && (r.message.type === 'TunnelReady' || r.message.type === 'TunnelError') && !this.taken.has(r),
        ),
      'TunnelReady or TunnelError',
    );
    this.taken.add(item);
    const message = (item as { message: ServerToClientMessage }).message as { type: 'TunnelReady'; data: TunnelReadyData } | { type: 'TunnelError'; data: TunnelErrorData };
    if (message.type === 'TunnelReady' && message.data.window !== undefined) this.window = message.data.window;
    return message;
  }

  /** Sets the connection window the client keeps to when sending (the server's setting). */
  setConnectionWindow(bytes: number): void {
    this.connectionCredit = bytes;
  }

  /** Answers every StreamOpen (past and future) with `handler`. */
  serve(handler: (request: ScriptedRequest) => HandlerResult | Promise<HandlerResult>): void {
    this.handler = handler;
    for (const stream of this.streams.values()) void this.dispatch(stream);
  }

  /** The stream the server opened with id `id`, or the next one opened whose StreamOpen matches `where`. */
  stream(where: (open: StreamOpenData) => boolean = () => true, what = 'a StreamOpen'): Promise<ClientStream> {
    return this.until(() => [...this.streams.values()].find((s) => where(s.open)), what);
  }

  /** The request body of `stream` once its FIN arrived. */
  async bodyOf(stream: ClientStream): Promise<Uint8Array> {
    await this.until(() => stream.finCount > 0 || this.closeInfo, `the request body FIN of stream ${stream.id}`);
    return concat(stream.chunks);
  }

  /** Sends StreamResponse and the body (≤64 KiB DATA frames within the flow-control window), then FIN unless `noFin`. */
  async respond(streamId: number, response: ScriptedResponse): Promise<void> {
    this.send({ type: 'StreamResponse', data: { stream_id: streamId, status: response.status, headers: response.headers ?? [] } });
    const pieces = response.body === undefined ? [] : Array.isArray(response.body) ? response.body.map(bytesOf) : [bytesOf(response.body)];
    await this.sendBody(streamId, pieces, !response.noFin);
  }

  /** Sends body pieces as DATA frames, waiting for window when flow control is on. */
  async sendBody(streamId: number, pieces: Uint8Array[], fin: boolean): Promise<void> {
    const stream = this.streams.get(streamId);
    const frames: Uint8Array[] = [];
    for (const piece of pieces) for (let at = 0; at < piece.byteLength; at += MAX_FRAME_PAYLOAD_BYTES) frames.push(piece.subarray(at, at + MAX_FRAME_PAYLOAD_BYTES));
    for (const [i, frame] of frames.entries()) {
      let offset = 0;
      while (offset < frame.byteLength) {
        let size = frame.byteLength - offset;
        if (this.flowControl && stream) {
          await this.until(() => this.closeInfo !== undefined || stream.closedByServer || (stream.sendCredit > 0 && this.connectionCredit > 0), `window for stream ${streamId}`);
          if (this.closeInfo || stream.closedByServer) return;
          size = Math.min(size, stream.sendCredit, this.connectionCredit);
          stream.sendCredit -= size;
          this.connectionCredit -= size;
        }
        if (!this.isOpen) return;
        const last = fin && i === frames.length - 1 && offset + size === frame.byteLength;
        this.sendFrame(streamId, FrameKind.DATA, last ? FLAG_FIN : 0, frame.subarray(offset, offset + size));
        if (stream) stream.sent += size;
        offset += size;
      }
    }
    if (fin && frames.length === 0 && this.isOpen) this.sendFrame(streamId, FrameKind.DATA, FLAG_FIN);
  }

  private onMessage(data: string | ArrayBuffer): void {
    const atMs = performance.now();
    if (typeof data === 'string') {
      const decoded = decodeControl(data, 'server_to_client');
      if (decoded.status !== 'message') throw new Error(`the server sent an undecodable control message: ${data.slice(0, 200)}`);
      const message = decoded.message;
      this.received.push({ kind: 'control', message, atMs });
      if (message.type === 'StreamOpen') {
        const stream: ClientStream = {
          id: message.data.stream_id,
          open: message.data,
          frames: [],
          chunks: [],
          finCount: 0,
          closedByServer: false,
          ungranted: 0,
          maxUngranted: 0,
          sendCredit: this.window,
          sent: 0,
        };
        this.streams.set(stream.id, stream);
        if (this.handler) void this.dispatch(stream);
      } else if (message.type === 'Heartbeat') {
        if (this.answerHeartbeats && this.isOpen) this.send({ type: 'Heartbeat', data: {} });
      } else if (message.type === 'StreamClose') {
        const stream = this.streams.get(message.data.stream_id);
        if (stream) stream.closedByServer = true;
      } else if (message.type === 'WindowUpdate') {
        if (message.data.stream_id === 0) this.connectionCredit += message.data.bytes;
        else {
          const stream = this.streams.get(message.data.stream_id);
          if (stream) stream.sendCredit += message.data.bytes;
        }
      }
    } else {
      const frame = decodeFrame(new Uint8Array(data));
      if (!frame.ok) throw new Error(`the server sent a bad frame: ${frame.error}`);
      const payload = frame.payload.slice();
      this.received.push({ kind: 'frame', streamId: frame.streamId, frameKind: frame.kind, flags: frame.flags, payload, atMs });
      const stream = this.streams.get(frame.streamId);
      if (stream && frame.kind === FrameKind.DATA) {
        const fin = (frame.flags & FLAG_FIN) !== 0;
        stream.frames.push({ bytes: payload.byteLength, fin });
        if (payload.byteLength > 0) stream.chunks.push(payload);
        if (fin) stream.finCount++;
        stream.ungranted += payload.byteLength;
        stream.maxUngranted = Math.max(stream.maxUngranted, stream.ungranted);
        this.connectionUngranted += payload.byteLength;
        this.maxConnectionUngranted = Math.max(this.maxConnectionUngranted, this.connectionUngranted);
        if (this.flowControl && this.autoGrant && payload.byteLength > 0) this.grant(stream, payload.byteLength);
      }
    }
    this.wake();
  }

  /** Grants `bytes` of request body back to the server on `stream` and on the connection. */
  grant(stream: ClientStream, bytes: number): void {
    stream.ungranted -= bytes;
    this.connectionUngranted -= bytes;
    if (!this.isOpen) return;
    if (!stream.closedByServer && stream.finCount === 0) this.send({ type: 'WindowUpdate', data: { stream_id: stream.id, bytes } });
    this.send({ type: 'WindowUpdate', data: { stream_id: 0, bytes } });
  }

  private async dispatch(stream: ClientStream): Promise<void> {
    const handler = this.handler!;
    const request: ScriptedRequest = {
      stream,
      method: stream.open.method,
      path: stream.open.path,
      headers: stream.open.headers,
      header: (name) => headerValues(stream.open.headers, name)[0],
      body: () => this.bodyOf(stream),
    };
    try {
      const result = await handler(request);
      if (result === undefined || !this.isOpen) return;
      if ('streamError' in result) this.send({ type: 'StreamError', data: { stream_id: stream.id, error: result.streamError } });
      else await this.respond(stream.id, result);
    } catch (error) {
      this.handlerErrors.push(error);
    }
  }

  private wake(): void {
    for (const waiter of [...this.waiters]) waiter();
  }
}

// ───────────────────────────── raw HTTP ─────────────────────────────

/** A raw HTTP answer: status line, headers (lower-cased names, repeats kept), body text. */
export interface RawResponse {
  status: number;
  headers: [string, string][];
  header(name: string): string | undefined;
  body: string;
  text: string;
}

/**
 * Sends `request` bytes as they are on a fresh TCP connection and reads one response (until the
 * server closes, or Content-Length / the chunked terminator is complete).
 */
export async function rawHttp(port: number, request: string | Uint8Array, timeoutMs = EVENT_TIMEOUT_MS): Promise<RawResponse> {
  const { promise, resolve, reject } = Promise.withResolvers<RawResponse>();
  let buffer = Buffer.alloc(0);
  let done = false;
  const head = (typeof request === 'string' ? request : Buffer.from(request).toString('latin1')).startsWith('HEAD ');
  const finish = (socket?: { end(): void }) => {
    if (done) return;
    const parsed = parseRaw(buffer, false, head);
    if (parsed === undefined) return;
    done = true;
    clearTimeout(timer);
    socket?.end();
    resolve(parsed);
  };
  const timer = setTimeout(() => {
    done = true;
    reject(new Error(`raw request got no complete answer in ${timeoutMs} ms; got: ${buffer.toString('latin1').slice(0, 300)}`));
  }, timeoutMs);
  const socket = await Bun.connect({
    hostname: '127.0.0.1',
    port,
    socket: {
      data(s, chunk) {
        buffer = Buffer.concat([buffer, chunk]);
        finish(s);
      },
      close() {
        if (done) return;
        const parsed = parseRaw(buffer, true, head);
        done = true;
        clearTimeout(timer);
        if (parsed) resolve(parsed);
        else reject(new Error(`connection closed without an answer; got: ${buffer.toString('latin1').slice(0, 300)}`));
      },
      error() {},
    },
  });
  socket.write(typeof request === 'string' ? Buffer.from(request, 'latin1') : request);
  return promise;
}

function parseRaw(buffer: Buffer, closed: boolean, headRequest: boolean): RawResponse | undefined {
  const end = buffer.indexOf('\r\n\r\n');
  if (end === -1) return undefined;
  const head = buffer.subarray(0, end).toString('latin1').split('\r\n');
  const status = Number(head[0]!.split(' ')[1]);
  const headers = head.slice(1).map((line) => {
    const colon = line.indexOf(':');
    return [line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()] as [string, string];
  });
  const get = (name: string) => headers.find(([n]) => n === name)?.[1];
  let rest = buffer.subarray(end + 4);
  let body: Buffer;
  const length = get('content-length');
  if (headRequest || status === 101 || status === 204 || status === 304) body = Buffer.alloc(0);
  else if (length !== undefined) {
    if (rest.byteLength < Number(length)) return undefined;
    body = rest.subarray(0, Number(length));
  } else if (get('transfer-encoding')?.toLowerCase() === 'chunked') {
    const parts: Buffer[] = [];
    for (;;) {
      const lineEnd = rest.indexOf('\r\n');
      if (lineEnd === -1) return undefined;
      const size = parseInt(rest.subarray(0, lineEnd).toString('latin1'), 16);
      if (rest.byteLength < lineEnd + 2 + size + 2) return undefined;
      if (size === 0) break;
      parts.push(rest.subarray(lineEnd + 2, lineEnd + 2 + size));
      rest = rest.subarray(lineEnd + 2 + size + 2);
    }
    body = Buffer.concat(parts);
  } else if (closed) body = rest;
  else return undefined;
  return { status, headers, header: get, body: body.toString('latin1'), text: buffer.toString('latin1') };
}

/** A WebSocket handshake request for the control channel, with extra header lines. */
export function upgradeRequest(extraHeaders: string[] = [], host = '127.0.0.1'): string {
  return [
    'GET /api/v1/tunnel/connect HTTP/1.1',
    `Host: ${host}`,
    'Upgrade: websocket',
    'Connection: Upgrade',
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
    'Sec-WebSocket-Version: 13',
    ...extraHeaders,
    '',
    '',
  ].join('\r\n');
}

/** Parses a visitor-error JSON body. */
export async function errorOf(res: Response): Promise<{ error: string; message: string }> {
  return (await res.json()) as { error: string; message: string };
}

