/**
 * End-to-end harness: the server (`bun src/index.ts`) and the `expose` client (`bun src/client/index.ts`)
 * as real processes from source, users and keys made through the real API, visitors routed by Host to
 * the server's socket, and the server's memory read from /proc. Nothing of the relay is faked.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { cleanEnv, spawnClient } from '../client/process.ts';
import { startServer } from '../reliability/helpers.ts';

/** The tunnel domain of the e2e servers, unless a test needs `localhost` (the browser). */
export const DOMAIN = 'expose.test';
/** Longest wait for one awaited event (a line of output, a status) before the test fails saying what it awaited. */
export const EVENT_TIMEOUT_MS = 10_000;
const PASSWORD = 'correct-zebra-staple-91';
const ROOT = join(import.meta.dir, '..', '..');
const SERVER_ENTRY = join(ROOT, 'src', 'index.ts');

let emailCounter = 0;

/** A user made through the API, with one API key. */
export interface E2EUser {
  email: string;
  token: string;
  key: string;
  keyId: string;
}

/** A visitor request's options: plain header pairs (Host is added), and `duplex` for a streamed body. */
export type VisitInit = Omit<RequestInit, 'headers'> & { headers?: Record<string, string>; duplex?: 'half' };

/** A running server child and what tests do with it. */
export interface E2EServer {
  pid: number;
  /** `http://127.0.0.1:{port}`, the API host. */
  url: string;
  port: number;
  domain: string;
  api(method: string, path: string, init?: { credential?: string; json?: unknown }): Promise<Response>;
  newUser(): Promise<E2EUser>;
  newKey(token: string): Promise<{ key: string; keyId: string }>;
  /** A visitor's request for `subdomain`, sent to the server's socket with `Host: {subdomain}.{domain}`. */
  visit(subdomain: string, path?: string, init?: VisitInit): Promise<Response>;
  /** Runs the operator CLI (`bun src/index.ts ...`) on the same database, as a separate process. */
  cli(args: string[]): Promise<{ exitCode: number; stdout: string; stderr: string }>;
  /** Kills the server; resolves with what it wrote to stderr (nothing, unless something went wrong). */
  stop(): Promise<string>;
}

/** Starts `bun src/index.ts` on a fresh file database, tunnel domain `expose.test`, rate limits off. */
export async function startE2EServer(env: Record<string, string> = {}): Promise<E2EServer> {
  const dir = mkdtempSync(join(tmpdir(), 'expose-e2e-'));
  const dbPath = join(dir, 'expose.db');
  const settings = { EXPOSE_TUNNEL_DOMAIN: DOMAIN, EXPOSE_RATE_LIMIT_AUTH: '0', EXPOSE_RATE_LIMIT_API: '0', ...env };
  const { process: child, url } = await startServer(dbPath, settings);
  const port = Number(new URL(url).port);
  const domain = settings.EXPOSE_TUNNEL_DOMAIN;

  const api: E2EServer['api'] = (method, path, init = {}) => {
    const headers: Record<string, string> = {};
    if (init.credential !== undefined) headers.authorization = `Bearer ${init.credential}`;
    if (init.json !== undefined) headers['content-type'] = 'application/json';
    return fetch(`${url}${path}`, { method, headers, body: init.json === undefined ? undefined : JSON.stringify(init.json) });
  };
  const newKey: E2EServer['newKey'] = async (token) => {
    const res = await api('POST', '/api/v1/api-keys', { credential: token, json: { name: 'e2e' } });
    if (res.status !== 201) throw new Error(`create key: ${res.status} ${await res.text()}`);
    const created = (await res.json()) as { key: string; api_key: { id: string } };
    return { key: created.key, keyId: created.api_key.id };
  };

  return {
    pid: child.pid,
    url,
    port,
    domain,
    api,
    newKey,
    async newUser() {
      const email = `e2e${++emailCounter}-${crypto.randomUUID().slice(0, 8)}@example.com`;
      const res = await api('POST', '/api/v1/auth/register', { json: { email, password: PASSWORD } });
      if (res.status !== 201) throw new Error(`register: ${res.status} ${await res.text()}`);
      const { token } = (await res.json()) as { token: string };
      return { email, token, ...(await newKey(token)) };
    },
    visit: (subdomain, path = '/', init = {}) => fetch(`${url}${path}`, { ...init, headers: { ...init.headers, host: `${subdomain}.${domain}` } } as RequestInit),
    async cli(args) {
      const proc = Bun.spawn([process.execPath, SERVER_ENTRY, ...args, '--db', dbPath], {
        cwd: ROOT,
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', EXPOSE_LOG_LEVEL: 'error' },
        stdin: 'ignore',
        stdout: 'pipe',
        stderr: 'pipe',
      });
      const [stdout, stderr, exitCode] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
      return { exitCode, stdout, stderr };
    },
    async stop() {
      child.kill('SIGKILL');
      await child.exited;
      const stderr = await new Response(child.stderr as ReadableStream).text();
      rmSync(dir, { recursive: true, force: true });
      return stderr;
    },
  };
}

/** A child's output read continuously (so a full pipe never stalls it), kept line by line, with waits. */
export class OutputLog {
  readonly lines: string[] = [];
  /** Settles once the stream has ended. */
  readonly ended: Promise<void>;
  private readonly waiters = new Set<() => void>();
  private done = false;

  constructor(stream: ReadableStream<Uint8Array>) {
    this.ended = this.pump(stream);
  }

  /** The whole output so far. */
  get text(): string {
    return this.lines.map((line) => `${line}\n`).join('');
  }

  /** The first line (already seen or to come) that `test` accepts; fails saying `what` when the output ends or time runs out. */
  find(test: (line: string, index: number) => boolean, what: string, timeoutMs = EVENT_TIMEOUT_MS): Promise<string> {
    const found = () => this.lines.find(test);
    const now = found();
    if (now !== undefined) return Promise.resolve(now);
    return new Promise((resolve, reject) => {
      const fail = (why: string) => {
        this.waiters.delete(check);
        clearTimeout(timer);
        reject(new Error(`${why} waiting for ${what}; output so far:\n${this.text}`));
      };
      const timer = setTimeout(() => fail(`timed out after ${timeoutMs} ms`), timeoutMs);
      const check = () => {
        const line = found();
        if (line !== undefined) {
          this.waiters.delete(check);
          clearTimeout(timer);
          resolve(line);
        } else if (this.done) fail('the output ended');
      };
      this.waiters.add(check);
    });
  }

  /** The first `--json` event of kind `event` whose fields include `match`, parsed; only among lines from index `fromLine` on when given. */
  async event(event: string, match: Record<string, unknown> = {}, timeoutMs = EVENT_TIMEOUT_MS, fromLine = 0): Promise<Record<string, unknown>> {
    const line = await this.find(
      (text, index) => {
        if (index < fromLine) return false;
        const parsed = parseJson(text);
        return parsed?.event === event && Object.entries(match).every(([key, value]) => parsed[key] === value);
      },
      `the event ${event} ${JSON.stringify(match)}`,
      timeoutMs,
    );
    return JSON.parse(line);
  }

  private async pump(stream: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    let buffer = '';
    for await (const chunk of stream as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true });
      const parts = buffer.split('\n');
      buffer = parts.pop()!;
      this.lines.push(...parts);
      for (const waiter of [...this.waiters]) waiter();
    }
    if (buffer !== '') this.lines.push(buffer);
    this.done = true;
    for (const waiter of [...this.waiters]) waiter();
  }
}

function parseJson(line: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(line);
  } catch {
    return undefined;
  }
}

/** A running `expose http` process. */
export interface E2EClient {
  child: Bun.Subprocess<'ignore', 'pipe', 'pipe'>;
  stdout: OutputLog;
  stderr: OutputLog;
  /** The `ready` event, once it came. */
  ready: Record<string, unknown>;
}

/**
 * Starts `expose http {localPort} --subdomain {subdomain} --json` with EXPOSE_SERVER and EXPOSE_API_KEY in
 * a clean environment; resolves once it printed `ready` (or rejects with its output when it exits first).
 * cleanUp() from test/client/process.ts kills it if the test did not.
 */
export async function startClient(server: E2EServer, key: string, subdomain: string, localPort: number, env: Record<string, string> = {}): Promise<E2EClient> {
  const child = spawnClient(
    ['http', String(localPort), '--subdomain', subdomain, '--json'],
    cleanEnv({ EXPOSE_SERVER: server.url, EXPOSE_API_KEY: key, ...env }),
  ) as Bun.Subprocess<'ignore', 'pipe', 'pipe'>;
  const stdout = new OutputLog(child.stdout);
  const stderr = new OutputLog(child.stderr);
  try {
    const ready = await stdout.event('ready');
    return { child, stdout, stderr, ready };
  } catch (error) {
    await stderr.ended;
    throw new Error(`${(error as Error).message}\nstderr:\n${stderr.text}`);
  }
}

/** Waits until `check` answers true, trying every `everyMs`; for state only visible by asking (a visitor's status). */
export async function until(check: () => Promise<boolean> | boolean, what: string, timeoutMs = EVENT_TIMEOUT_MS, everyMs = 20): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await Bun.sleep(everyMs);
  }
}

// ─────────────────────────────── memory of a process ───────────────────────────────

const KIB = 1024;
/** Bytes in a MiB, for bounds and printing. */
export const MIB = 1024 * 1024;

function statusKiB(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(match[1]);
}

/** Resident set size of `pid`, in bytes. */
export const rssBytes = (pid: number) => statusKiB(pid, 'VmRSS') * KIB;

/**
 * Samples a process's resident set while something runs. The kernel's own high-water mark (VmHWM,
 * reset through /proc/<pid>/clear_refs at the start) is read too, so a peak between two samples is not
 * missed; `peakBytes` is the larger of the two.
 */
export class RssWatch {
  /** The RSS when the watch started. */
  readonly baselineBytes: number;
  private sampledPeakBytes: number;
  private readonly timer: Timer;
  private readonly hwmReset: boolean;

  constructor(
    private readonly pid: number,
    intervalMs = 20,
  ) {
    // Writing 5 resets VmHWM to the current RSS (Linux 4.0+); a container may refuse it, then sampling alone counts.
    let reset = false;
    try {
      writeFileSync(`/proc/${pid}/clear_refs`, '5');
      reset = true;
    } catch {
      // Sampling only.
    }
    this.hwmReset = reset;
    this.baselineBytes = rssBytes(pid);
    this.sampledPeakBytes = this.baselineBytes;
    this.timer = setInterval(() => this.sample(), intervalMs);
  }

  /** The highest RSS seen so far, sampled or (when it could be reset) the kernel's high-water mark. */
  get peakBytes(): number {
    this.sample();
    return this.hwmReset ? Math.max(this.sampledPeakBytes, statusKiB(this.pid, 'VmHWM') * KIB) : this.sampledPeakBytes;
  }

  /** Stops sampling; the figures stay readable. */
  stop(): void {
    clearInterval(this.timer);
  }

  private sample(): void {
    try {
      this.sampledPeakBytes = Math.max(this.sampledPeakBytes, rssBytes(this.pid));
    } catch {
      // The process is gone; the last sample stands.
    }
  }
}

// ─────────────────────────────── bytes to move ───────────────────────────────

/** Random bytes that generated bodies are cut from: every chunk differs, so a lost or reordered piece changes the hash. */
const POOL = crypto.getRandomValues(new Uint8Array(4 * MIB));
/** Chunks are an odd size, so they never line up with the relay's 64 KiB frames. */
const CHUNK_BYTES = 256 * 1024 + 13;

/** The `i`th generated chunk: a view into the pool at an offset that moves with `i`. */
function chunkAt(i: number): Uint8Array {
  const offset = (i * 104_729) % (POOL.byteLength - CHUNK_BYTES);
  return POOL.subarray(offset, offset + CHUNK_BYTES);
}

/** What a generated body was: its length and SHA-256 (hex), computed by whoever produced or consumed it. */
export interface Digest {
  bytes: number;
  sha256: string;
}

/** A generated body and what became of it. */
export interface GeneratedBody {
  stream: ReadableStream<Uint8Array>;
  /** Settles once the last byte has been handed over. */
  digest: Promise<Digest>;
  /** Settles when the reader cancelled the stream (the HTTP server does so when its client goes away). */
  cancelled: Promise<void>;
  /** Bytes handed over so far. */
  produced(): number;
}

/**
 * A stream of `totalBytes` generated bytes (Infinity: never ends), hashed as it is produced; `digest`
 * settles once the last byte has been handed over. Nothing is produced ahead of the reader.
 */
export function generatedBody(totalBytes: number): GeneratedBody {
  const hasher = new Bun.CryptoHasher('sha256');
  let produced = 0;
  let index = 0;
  let settle!: (digest: Digest) => void;
  const digest = new Promise<Digest>((resolve) => {
    settle = resolve;
  });
  let onCancel!: () => void;
  const cancelled = new Promise<void>((resolve) => {
    onCancel = resolve;
  });
  const stream = new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        const left = totalBytes - produced;
        const chunk = chunkAt(index++);
        const piece = left < chunk.byteLength ? chunk.subarray(0, left) : chunk;
        if (totalBytes !== Number.POSITIVE_INFINITY) hasher.update(piece);
        produced += piece.byteLength;
        controller.enqueue(piece);
        if (produced >= totalBytes) {
          controller.close();
          settle({ bytes: produced, sha256: hasher.digest('hex') });
        }
      },
      cancel: () => onCancel(),
    },
    { highWaterMark: 0 },
  );
  return { stream, digest, cancelled, produced: () => produced };
}

/** Reads `body` to its end, hashing as it goes. Rejects when the body is cut. */
export async function digestOf(body: ReadableStream<Uint8Array>): Promise<Digest> {
  const hasher = new Bun.CryptoHasher('sha256');
  let bytes = 0;
  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
    hasher.update(chunk);
    bytes += chunk.byteLength;
  }
  return { bytes, sha256: hasher.digest('hex') };
}

/** MB/s (10^6 bytes per second) of `bytes` moved in `ms`, one decimal. */
export const megabytesPerSecond = (bytes: number, ms: number) => Math.round((bytes / 1e6 / (ms / 1000)) * 10) / 10;

// ─────────────────────────────── waiting ───────────────────────────────

/** `promise`, or a rejection naming `what` after `timeoutMs`. */
export async function withTimeout<T>(promise: Promise<T>, what: string, timeoutMs = EVENT_TIMEOUT_MS): Promise<T> {
  let timer: Timer | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Things that arrive by name (an origin's requests, say), with a wait for one not yet there. */
export class Arrivals<T> {
  private readonly arrived = new Map<string, T>();
  private readonly waiters = new Map<string, ((value: T) => void)[]>();

  /** Records `value` under `name` and wakes whoever waits for it. */
  add(name: string, value: T): void {
    this.arrived.set(name, value);
    for (const wake of this.waiters.get(name) ?? []) wake(value);
    this.waiters.delete(name);
  }

  /** The value under `name`; throws when it never arrived. */
  get(name: string): T {
    if (!this.arrived.has(name)) throw new Error(`${name} never arrived`);
    return this.arrived.get(name)!;
  }

  /** Resolves with the value under `name` once it arrives. */
  when(name: string, timeoutMs = EVENT_TIMEOUT_MS): Promise<T> {
    if (this.arrived.has(name)) return Promise.resolve(this.arrived.get(name)!);
    const arrival = new Promise<T>((resolve) => this.waiters.set(name, [...(this.waiters.get(name) ?? []), resolve]));
    return withTimeout(arrival, `${name} to arrive`, timeoutMs);
  }
}

// ─────────────────────────────── WebSocket visitors and local services ───────────────────────────────

/** Local services the WebSocket tests run as processes of their own (test/e2e/fixtures). */
export const FIXTURES = join(import.meta.dir, 'fixtures');
const localServices: Bun.Subprocess[] = [];

/** A local service in its own process, reporting JSON lines on stdout; its first is `{"event":"listening","port":N}`. */
export interface LocalService {
  child: Bun.Subprocess<'ignore', 'pipe', 'pipe'>;
  /** What it reported: `log.event('close', {code: 4000})` waits for a report. */
  log: OutputLog;
  stderr: OutputLog;
  port: number;
}

/**
 * Starts `argv` (`['node', 'fixtures/x.mjs']`) and resolves once it says which port the kernel gave
 * it; stopLocalServices() kills it.
 */
export async function startLocalService(argv: string[], env: Record<string, string> = {}): Promise<LocalService> {
  const child = Bun.spawn(argv, { cwd: ROOT, env: { ...process.env, ...env }, stdin: 'ignore', stdout: 'pipe', stderr: 'pipe' }) as Bun.Subprocess<'ignore', 'pipe', 'pipe'>;
  localServices.push(child);
  const log = new OutputLog(child.stdout);
  const stderr = new OutputLog(child.stderr);
  try {
    const { port } = await log.event('listening', {}, 30_000);
    return { child, log, stderr, port: Number(port) };
  } catch (error) {
    throw new Error(`${argv.join(' ')}: ${(error as Error).message}\nstderr:\n${stderr.text}`);
  }
}

/** Kills every local service started by startLocalService(); for afterAll. */
export async function stopLocalServices(): Promise<void> {
  const children = localServices.splice(0);
  for (const child of children) child.kill('SIGKILL');
  await Promise.all(children.map((child) => child.exited));
}

/** Values that arrive one by one (a socket's messages), taken in order, with a wait for one not yet there. */
export class Inbox<T> {
  private readonly items: T[] = [];
  private readonly waiters: ((value: T) => void)[] = [];

  /** How many arrived and were not taken yet. */
  get size(): number {
    return this.items.length;
  }

  push(value: T): void {
    const waiter = this.waiters.shift();
    if (waiter) waiter(value);
    else this.items.push(value);
  }

  /** The next value; fails naming `what` after `timeoutMs` (and then takes nothing that comes later). */
  next(what: string, timeoutMs = EVENT_TIMEOUT_MS): Promise<T> {
    if (this.items.length > 0) return Promise.resolve(this.items.shift()!);
    let waiter!: (value: T) => void;
    const arrival = new Promise<T>((resolve) => {
      waiter = resolve;
      this.waiters.push(waiter);
    });
    return withTimeout(arrival, what, timeoutMs).catch((error) => {
      const index = this.waiters.indexOf(waiter);
      if (index !== -1) this.waiters.splice(index, 1);
      throw error;
    });
  }
}

/** How a WebSocket closed, as its `close` event said. */
export interface SocketClose {
  code: number;
  reason: string;
}

/**
 * A visitor's WebSocket to a tunnel (Bun's client), connected to the server's socket with the
 * tunnel's Host: whatever it receives is queued, text as strings and binary as bytes.
 */
export class VisitorSocket {
  readonly socket: WebSocket;
  readonly messages = new Inbox<string | Uint8Array>();
  /** Payloads of pings and pongs from the far side, as text. */
  readonly pings = new Inbox<string>();
  readonly pongs = new Inbox<string>();
  /** Settles once the socket is open; rejects when it closes before. */
  readonly opened: Promise<void>;
  /** Settles once the socket has closed, with the code and reason the visitor saw. */
  readonly closed: Promise<SocketClose>;

  constructor(server: Pick<E2EServer, 'port' | 'domain'>, subdomain: string, path = '/', protocols: string[] = []) {
    // Bun's WebSocket takes headers: the Host names the tunnel, the address is the server's socket.
    this.socket = new WebSocket(`ws://127.0.0.1:${server.port}${path}`, {
      headers: { host: `${subdomain}.${server.domain}:${server.port}` },
      ...(protocols.length === 0 ? {} : { protocols }),
    } as never);
    this.socket.binaryType = 'arraybuffer';
    const text = (data: unknown) => (data === undefined ? '' : Buffer.from(data as ArrayBuffer).toString());
    this.socket.addEventListener('message', (event) => this.messages.push(typeof event.data === 'string' ? event.data : new Uint8Array(event.data as ArrayBuffer)));
    this.socket.addEventListener('ping' as 'message', (event) => this.pings.push(text(event.data)));
    this.socket.addEventListener('pong' as 'message', (event) => this.pongs.push(text(event.data)));
    this.closed = new Promise((resolve) => this.socket.addEventListener('close', (event) => resolve({ code: event.code, reason: event.reason })));
    this.opened = new Promise((resolve, reject) => {
      this.socket.addEventListener('open', () => resolve());
      void this.closed.then((close) => reject(new Error(`the visitor's WebSocket closed before it opened (${close.code})`)));
    });
    this.opened.catch(() => {});
  }

  /** Opens a socket and waits until it is open. */
  static async open(server: Pick<E2EServer, 'port' | 'domain'>, subdomain: string, path = '/', protocols: string[] = []): Promise<VisitorSocket> {
    const visitor = new VisitorSocket(server, subdomain, path, protocols);
    await withTimeout(visitor.opened, `the WebSocket to ${subdomain}${path} to open`);
    return visitor;
  }

  /** The next message, text or bytes. */
  next(what = 'a message', timeoutMs = EVENT_TIMEOUT_MS): Promise<string | Uint8Array> {
    return this.messages.next(what, timeoutMs);
  }

  /** The next message, which must be text. */
  async nextText(what = 'a text message', timeoutMs = EVENT_TIMEOUT_MS): Promise<string> {
    const message = await this.next(what, timeoutMs);
    if (typeof message !== 'string') throw new Error(`expected text, got ${message.byteLength} bytes of binary`);
    return message;
  }

  /** Sends `message` and resolves with the next message back (the echo). */
  async roundTrip(message: string | Uint8Array, timeoutMs = EVENT_TIMEOUT_MS): Promise<string | Uint8Array> {
    this.socket.send(message);
    return this.next('the echo', timeoutMs);
  }
}

/** What a raw upgrade request got: the response head, and the socket, still open and not read further. */
export interface RawUpgrade {
  status: number;
  headers: Headers;
  socket: Socket;
}

/**
 * A WebSocket handshake written by hand on a plain TCP socket to the server, Host naming the tunnel:
 * for a visitor who is refused (the status and X-Expose-Error are plain to read), and for one who
 * completes the handshake and then never reads (pause() stops reading from the kernel).
 */
export async function rawUpgrade(server: Pick<E2EServer, 'port' | 'domain'>, subdomain: string, path = '/'): Promise<RawUpgrade> {
  const socket = connect(server.port, '127.0.0.1');
  const key = Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString('base64');
  socket.write(
    [`GET ${path} HTTP/1.1`, `Host: ${subdomain}.${server.domain}:${server.port}`, 'Upgrade: websocket', 'Connection: Upgrade', `Sec-WebSocket-Key: ${key}`, 'Sec-WebSocket-Version: 13', 'Accept: application/json', '', ''].join('\r\n'),
  );
  const head = await withTimeout(
    new Promise<string>((resolve, reject) => {
      let received = Buffer.alloc(0);
      const onData = (chunk: Buffer) => {
        received = Buffer.concat([received, chunk]);
        const end = received.indexOf('\r\n\r\n');
        if (end === -1) return;
        socket.off('data', onData);
        socket.pause();
        resolve(received.subarray(0, end).toString('latin1'));
      };
      socket.on('data', onData);
      socket.once('error', reject);
      socket.once('close', () => reject(new Error('the server closed the connection before answering the upgrade')));
    }),
    `an answer to the upgrade of ${subdomain}${path}`,
  );
  const [statusLine = '', ...headerLines] = head.split('\r\n');
  const headers = new Headers();
  for (const line of headerLines) {
    const colon = line.indexOf(':');
    if (colon > 0) headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
  }
  return { status: Number(statusLine.split(' ')[1]), headers, socket };
}

/** The live tunnel named `subdomain` as GET /api/v1/tunnels shows it to `credential`. */
export async function tunnelInfo(server: E2EServer, credential: string, subdomain: string): Promise<Record<string, unknown> & { active_streams: number; bytes_in: number; bytes_out: number; request_count: number }> {
  const res = await server.api('GET', '/api/v1/tunnels', { credential });
  if (res.status !== 200) throw new Error(`list tunnels: ${res.status} ${await res.text()}`);
  const tunnel = ((await res.json()) as Record<string, unknown>[]).find((t) => t.subdomain === subdomain);
  if (!tunnel) throw new Error(`no live tunnel ${subdomain}`);
  return tunnel as Awaited<ReturnType<typeof tunnelInfo>>;
}
