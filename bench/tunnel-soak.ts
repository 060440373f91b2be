/**
 * Tunnel soak: one real server, one origin, `--tunnels` real `expose http` clients (one API key each,
 * subdomains soak-0, soak-1, ...), mixed visitor traffic over all of them for the whole run, while
 * clients are killed (SIGKILL or SIGTERM) and restarted, control connections are cut under live
 * clients (`ss -K`, where the kernel allows it) and, now and then, a key is revoked and its subdomain
 * handed to a new key and client. Watches the server's resident memory and open descriptors.
 *
 *   bun bench/tunnel-soak.ts [--seconds 600] [--tunnels 20] [--revoke-every 60] [--kill-every 3]
 *                            [--drop-every 10] [--visitors 8] [--ws 3] [--comeback-seconds 10]
 *                            [--sample-every 5] [--seed N]
 *
 * Every visitor answer is judged (see `judge()` for the exact rule): outside a disruption window of
 * its tunnel it must be a 200 with the right body (or, for a WebSocket, every echo in order and a
 * clean close); inside one only the answers that disruption explains are accepted. Exits 1 on any
 * unexpected answer, any client that does not come back on its own subdomain in time (or does not
 * exit after a revocation), or growth. Figures go to stdout and bench/results/tunnel-soak.json.
 * The soak pins itself to the load core (its children, the origin and the clients, inherit it) and
 * the server to the server core, as bench/soak.ts does.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { judgeGrowth, type ResourceSample } from './lib/growth.ts';
import { BUN, CORES, freePort, openFds, pinned, readTaggedLine, rssBytes, stop, type Child } from './lib/process.ts';
import { percentile, round } from './lib/stats.ts';
// Seeded (Mulberry32): the chaos schedule and the traffic mix of a run can be replayed with --seed.
import { seededRandom } from '../test/reliability/helpers.ts';

const { values } = parseArgs({
  args: Bun.argv.slice(2),
  options: {
    seconds: { type: 'string', default: '600' },
    tunnels: { type: 'string', default: '20' },
    'revoke-every': { type: 'string', default: '60' },
    'kill-every': { type: 'string', default: '3' },
    'drop-every': { type: 'string', default: '10' },
    'sample-every': { type: 'string' },
    visitors: { type: 'string', default: '8' },
    ws: { type: 'string', default: '3' },
    'comeback-seconds': { type: 'string', default: '10' },
    seed: { type: 'string' },
  },
  strict: true,
});

const DURATION_MS = Number(values.seconds) * 1000;
const TUNNELS = Number(values.tunnels);
/** Revocations: every `--revoke-every` seconds, but at least two in any run (a third of the run apart at most). */
const REVOKE_EVERY_MS = Math.min(Number(values['revoke-every']) * 1000, DURATION_MS / 3);
/** Kills: one every `--kill-every` seconds on average (uniform between half and one and a half times it). */
const KILL_EVERY_MS = Number(values['kill-every']) * 1000;
/** Connection cuts under a live client (`ss -K`): one every `--drop-every` seconds on average; 0 turns them off. */
const DROP_EVERY_MS = Number(values['drop-every']) * 1000;
const HTTP_VISITORS = Number(values.visitors);
const WS_VISITORS = Number(values.ws);
/** A restarted (or replacement) client must serve its subdomain again within this long of being started. */
const COMEBACK_MS = Number(values['comeback-seconds']) * 1000;
const SEED = values.seed === undefined ? (Math.random() * 2 ** 32) >>> 0 : Number(values.seed);
for (const [name, value] of Object.entries({ seconds: DURATION_MS, tunnels: TUNNELS, 'kill-every': KILL_EVERY_MS, 'drop-every': DROP_EVERY_MS, visitors: HTTP_VISITORS, ws: WS_VISITORS, 'comeback-seconds': COMEBACK_MS, seed: SEED })) {
  if (!Number.isFinite(value) || value < 0) throw new Error(`--${name}: not a number`);
}
if (TUNNELS < 2 || TUNNELS > 200) throw new Error('--tunnels: 2 to 200');
if (DURATION_MS < 30_000) throw new Error('--seconds: at least 30');

const ROOT = join(import.meta.dir, '..');
const SERVER_ENTRY = join(ROOT, 'src', 'index.ts');
const CLIENT_ENTRY = join(ROOT, 'src', 'client', 'index.ts');
const ORIGIN = join(import.meta.dir, 'servers', 'tunnel-origin.ts');
const DOMAIN = 'expose.test';
const PASSWORD = 'soak-password-not-common-19';
const MIB = 1024 * 1024;
/**
 * Server RSS and descriptors are read every 5 s. The RSS swings by some 40 MiB with garbage
 * collection (100 to 140 MiB here), so a run shorter than 5 minutes reads them every 0.5 s, so that
 * each third of its steady state still has enough samples for a steady median.
 */
const SAMPLE_EVERY_MS = values['sample-every'] !== undefined ? Number(values['sample-every']) * 1000 : DURATION_MS >= 300_000 ? 5000 : 500;
if (!(SAMPLE_EVERY_MS >= 100)) throw new Error('--sample-every: at least 0.1 s');
/** Samples before this are start-up and JIT warm-up, not growth (as bench/soak.ts; shorter for short runs). */
const WARMUP_MS = Math.min(20_000, DURATION_MS / 4);
/** Chaos starts after a few seconds of clean traffic and stops this long before the end, so every tunnel is back for the final check. */
const CHAOS_START_MS = 3000;
const CHAOS_STOP_BEFORE_END_MS = 15_000;
/** Longest a visitor operation may take before it counts as hung. */
const OP_TIMEOUT_MS = 30_000;
/** A revoked key's client must have exited, and its host answer 404, within these. */
const REVOKED_EXIT_MS = 5000;
const REVOKED_404_MS = 2000;
/** A client sent SIGTERM must exit 0 within this. */
const TERM_EXIT_MS = 5000;
/** EXPOSE_SUBDOMAIN_GRACE of the server under test, in ms (its default, set explicitly). */
const GRACE_MS = 30_000;
/** At most this many tunnels disrupted at once. */
const MAX_DOWN = Math.max(1, Math.floor(TUNNELS / 4));
const DOWNLOAD_FILL = 120; // bench/servers/tunnel-origin.ts fills downloads with this byte
const HELLO = 'Hello, world';

const random = seededRandom(SEED);
const between = (lo: number, hi: number) => lo + Math.floor(random() * (hi - lo + 1));

if (CORES.pinned) Bun.spawnSync(['taskset', '-a', '-p', '-c', CORES.load, String(process.pid)], { stdout: 'ignore' });

// ─────────────────────────────── processes ───────────────────────────────

const workDir = mkdtempSync(join(tmpdir(), 'expose-tunnel-soak-'));
const LOG_FILE = join(workDir, 'server.log');
const children = new Set<Child>();
process.once('exit', () => {
  for (const child of children) child.kill('SIGKILL');
  // Also here, not only after the verdict: a run that fails in set-up leaves no directory behind (force: gone already is fine).
  rmSync(workDir, { recursive: true, force: true });
});
let runStartMs = Date.now();
/** Set once the run is over and the clients are being stopped on purpose. */
let shuttingDown = false;
const at = (ms = Date.now()) => round((ms - runStartMs) / 1000, 2);
const log = (text: string) => process.stderr.write(`tunnel-soak ${at().toFixed(1)}s: ${text}\n`);

// On a shared machine the soak itself (and the clients, which share its core) can be stalled for
// seconds. A 50 ms ticker measures how long the soak's event loop was held up; the time bounds below
// (comeback, 404 after a revocation, exits) count only time it was awake, so a stall of the whole
// load side is not blamed on the tunnel. The figures reported are the plain elapsed times.
const STALL_TICK_MS = 50;
let stalledTotalMs = 0;
let stallMaxMs = 0;
let lastTick = performance.now();
const lateness = () => Math.max(0, performance.now() - lastTick - STALL_TICK_MS);
const stallTicker = setInterval(() => {
  const late = lateness();
  if (late > 25) {
    stalledTotalMs += late;
    stallMaxMs = Math.max(stallMaxMs, late);
  }
  lastTick = performance.now();
}, STALL_TICK_MS);
/** Elapsed time from its start: `raw`, and `awake` (minus the soak's stalls, one still under way included). */
class Stopwatch {
  private readonly startMs = Date.now();
  private readonly stalledAtStart = stalledTotalMs;
  get raw(): number {
    return Date.now() - this.startMs;
  }
  get awake(): number {
    const pending = lateness() > 25 ? lateness() : 0;
    return this.raw - (stalledTotalMs + pending - this.stalledAtStart);
  }
}

/** Waits for `client` to exit, for at most `boundMs` of awake time; undefined if it is still running. */
async function waitExit(client: ClientProcess, boundMs: number): Promise<{ code: number | null; ms: number } | undefined> {
  const watch = new Stopwatch();
  let result: { code: number | null; ms: number } | undefined;
  void client.exited.then((code) => (result = { code, ms: watch.raw }));
  while (result === undefined && watch.awake <= boundMs) await Bun.sleep(20);
  return result;
}

/** `bun src/index.ts` on a fresh file database, pinned to the server core, warnings and errors to LOG_FILE. */
async function startServer(): Promise<{ child: Child; port: number; url: string; stderr: Promise<string> }> {
  const port = await freePort();
  const child = Bun.spawn(pinned(CORES.server, [BUN, SERVER_ENTRY, '--host', '127.0.0.1', '--port', String(port), '--db', join(workDir, 'expose.db')]), {
    cwd: ROOT,
    env: {
      ...process.env,
      EXPOSE_TUNNEL_DOMAIN: DOMAIN,
      EXPOSE_RATE_LIMIT_AUTH: '0',
      EXPOSE_RATE_LIMIT_API: '0',
      EXPOSE_MAX_TUNNELS: '0',
      EXPOSE_MAX_API_KEYS: '1000',
      EXPOSE_SUBDOMAIN_GRACE: String(GRACE_MS / 1000),
      EXPOSE_LOG_LEVEL: 'warn',
    },
    stdout: Bun.file(LOG_FILE),
    stderr: 'pipe',
  });
  children.add(child);
  const stderr = new Response(child.stderr as ReadableStream<Uint8Array>).text();
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}: ${await stderr}`);
    try {
      const res = await fetch(`${url}/health`);
      await res.arrayBuffer();
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error('server never became healthy');
    await Bun.sleep(20);
  }
  return { child, port, url, stderr };
}

const server = await startServer();
const origin = Bun.spawn([BUN, ORIGIN], { stdout: 'pipe', stderr: 'inherit' });
children.add(origin);
const { port: originPort } = await readTaggedLine<{ port: number }>({ stdout: origin.stdout as ReadableStream<Uint8Array> }, 'READY ');

async function api(method: string, path: string, token?: string, body?: unknown): Promise<Response> {
  const headers: Record<string, string> = {};
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  return fetch(`${server.url}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
}
const registered = await api('POST', '/api/v1/auth/register', undefined, { email: `tunnel-soak-${SEED}@example.com`, password: PASSWORD });
if (registered.status !== 201) throw new Error(`register: ${registered.status} ${await registered.text()}`);
const { token: JWT } = (await registered.json()) as { token: string };

let keysMade = 0;
async function newKey(): Promise<{ id: string; key: string }> {
  const res = await api('POST', '/api/v1/api-keys', JWT, { name: `soak-${keysMade++}` });
  if (res.status !== 201) throw new Error(`create key: ${res.status} ${await res.text()}`);
  const created = (await res.json()) as { api_key: { id: string }; key: string };
  return { id: created.api_key.id, key: created.key };
}

/** One `expose http` process: its --json events (request lines only counted), stderr, and how it ended. */
class ClientProcess {
  readonly child: Child;
  readonly startedAt = Date.now();
  /** Every event but `request` lines, with the time it was read. */
  readonly events: Array<{ atMs: number; event: Record<string, unknown> }> = [];
  requestLines = 0;
  /** Every `ready` event (one per connection that registered), with the time it was read. */
  readonly readies: Array<{ atMs: number; event: Record<string, unknown> }> = [];
  stderr = '';
  /** The last lines of stdout, for error reports. */
  private tail: string[] = [];
  private readyWaiters: Array<() => void> = [];
  readonly exited: Promise<number | null>;

  constructor(
    readonly subdomain: string,
    key: string,
  ) {
    const home = join(workDir, `home-${subdomain}`);
    const child = Bun.spawn([BUN, CLIENT_ENTRY, 'http', String(originPort), '--subdomain', subdomain, '--json'], {
      cwd: ROOT,
      // The key by environment: it never appears in the process list.
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, XDG_CONFIG_HOME: join(home, 'config'), NO_COLOR: '1', EXPOSE_SERVER: server.url, EXPOSE_API_KEY: key },
      stdin: 'ignore',
      stdout: 'pipe',
      stderr: 'pipe',
    });
    this.child = child;
    children.add(child);
    void this.pump(child.stdout as ReadableStream<Uint8Array>);
    const stderrDone = (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of child.stderr as unknown as AsyncIterable<Uint8Array>) this.stderr = (this.stderr + decoder.decode(chunk, { stream: true })).slice(-4000);
    })();
    this.exited = child.exited.then(async (code) => {
      await stderrDone.catch(() => undefined);
      children.delete(child);
      return code;
    });
  }

  /** The latest `ready` event. */
  get ready(): Record<string, unknown> | undefined {
    return this.readies.at(-1)?.event;
  }

  /** Resolves at the `count`th `ready` event, or rejects after `timeoutMs` or when the process ends first. */
  waitReady(timeoutMs: number, count = 1): Promise<{ atMs: number; event: Record<string, unknown> }> {
    return new Promise((resolve, reject) => {
      if (this.readies.length >= count) return resolve(this.readies[count - 1]!);
      const timer = setTimeout(() => reject(new Error(`no ready event (#${count}) within ${timeoutMs} ms; ${this.describe()}`)), timeoutMs);
      const check = () => {
        if (this.readies.length < count) return this.readyWaiters.push(check);
        clearTimeout(timer);
        resolve(this.readies[count - 1]!);
      };
      this.readyWaiters.push(check);
      void this.exited.then(() => {
        clearTimeout(timer);
        if (this.readies.length < count) reject(new Error(`exited (${this.child.exitCode ?? this.child.signalCode}) before ready event #${count}; ${this.describe()}`));
      });
    });
  }

  describe(): string {
    return `stdout tail: ${JSON.stringify(this.tail.slice(-6))}; stderr: ${JSON.stringify(this.stderr.slice(-500))}`;
  }

  /** States reported at or after `fromMs`. */
  statesSince(fromMs: number): Array<{ state: string; detail: string | undefined }> {
    return this.events
      .filter((e) => e.atMs >= fromMs && e.event.event === 'state')
      .map((e) => ({ state: String(e.event.state), detail: e.event.detail === undefined ? undefined : String(e.event.detail) }));
  }

  private async pump(stdout: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    let buffered = '';
    for await (const chunk of stdout as unknown as AsyncIterable<Uint8Array>) {
      buffered += decoder.decode(chunk, { stream: true });
      let newline = buffered.indexOf('\n');
      while (newline !== -1) {
        this.line(buffered.slice(0, newline));
        buffered = buffered.slice(newline + 1);
        newline = buffered.indexOf('\n');
      }
    }
    if (buffered !== '') this.line(buffered);
  }

  private line(text: string): void {
    this.tail.push(text);
    if (this.tail.length > 20) this.tail.shift();
    // Request lines are most of the output: counted, not kept.
    if (text.startsWith('{"event":"request"')) {
      this.requestLines++;
      return;
    }
    let event: Record<string, unknown>;
    try {
      event = JSON.parse(text) as Record<string, unknown>;
    } catch {
      return;
    }
    this.events.push({ atMs: Date.now(), event });
    if (event.event === 'ready') {
      this.readies.push({ atMs: Date.now(), event });
      for (const wake of this.readyWaiters.splice(0)) wake();
    }
  }
}

// ─────────────────────────────── tunnels and their disruptions ───────────────────────────────

type DisruptionKind = 'sigkill' | 'sigterm' | 'drop' | 'revoke';

/**
 * A time during which a tunnel may legitimately answer something other than 200: from just before
 * the signal or the DELETE, until the replacement client printed `ready`. `settledAt` is when the
 * server was first seen giving the answer that stands for the whole gap (503 after a SIGKILL, 404
 * after a SIGTERM or a revocation); from then on only that answer (or a 200 from the new client) fits.
 */
interface Disruption {
  kind: DisruptionKind;
  from: number;
  settledAt: number | undefined;
  to: number | undefined;
  /** Answers seen inside this window, by answer. */
  answers: Record<string, number>;
}

interface Tunnel {
  index: number;
  subdomain: string;
  host: string;
  keyId: string;
  client: ClientProcess;
  /** A kill or revocation is in progress (until the replacement is back and probed). */
  busy: boolean;
  /** No client could be started again: left out of further chaos. */
  broken: boolean;
  /** Why the current client process is expected to end, once it has been told to. */
  expectEnd: DisruptionKind | undefined;
  disruptions: Disruption[];
}

/** The answer that stands for a whole disruption once the server has noticed it. */
const SETTLED: Record<DisruptionKind, string> = { sigkill: '503 tunnel_reconnecting', sigterm: '404 tunnel_not_found', drop: '503 tunnel_reconnecting', revoke: '404 tunnel_not_found' };
/** What a request that overlaps the moment of a disruption may get, besides a correct 200. */
const LOOSE: Record<DisruptionKind, ReadonlySet<string>> = {
  // The client is gone without a word: requests waiting for headers get 502, answers under way are
  // cut, and the server holds the name (503) for the grace time. Never 404 (the hold must not lapse).
  sigkill: new Set(['502 tunnel_error', '503 tunnel_reconnecting', 'cut']),
  // The connection is cut under a live client (ss -K): as for SIGKILL, until the same process reconnects.
  drop: new Set(['502 tunnel_error', '503 tunnel_reconnecting', 'cut']),
  // A clean close (1000): the name is freed at once (404); no hold, so never 503.
  sigterm: new Set(['502 tunnel_error', '404 tunnel_not_found', 'cut']),
  // GoAway revoked, close 4001: no grace, 404 at once; never 503.
  revoke: new Set(['502 tunnel_error', '404 tunnel_not_found', 'cut']),
};

const tunnels: Tunnel[] = [];

// ─────────────────────────────── judging answers ───────────────────────────────

type OpKind = 'small request' | 'GET download' | 'POST upload' | 'WebSocket session' | 'probe';
const OP_KINDS: OpKind[] = ['small request', 'GET download', 'POST upload', 'WebSocket session', 'probe'];
interface OpStats {
  count: number;
  ok: number;
  /** Not a 200, but explained by a disruption window. */
  expected: number;
  unexpected: number;
  bytes: number;
}
const ops = Object.fromEntries(OP_KINDS.map((k) => [k, { count: 0, ok: 0, expected: 0, unexpected: 0, bytes: 0 }])) as Record<OpKind, OpStats>;
let wsMessages = 0;
let inFlight = 0;
interface Unexpected {
  atSeconds: number;
  startedAtSeconds: number;
  tunnel: string;
  op: string;
  answer: string;
  detail: string;
  windows: string;
}
const unexpected: Unexpected[] = [];
let unexpectedCount = 0;
const unexpectedByAnswer: Record<string, number> = {};

/**
 * One visitor operation's outcome: `ok` (a 200 with exactly the right body; for a WebSocket every
 * echo, in order, then a clean 1000 close), `<status> <X-Expose-Error>` for an answer of the server's
 * own, `cut` (the connection ended before the whole answer: a network error, a short body, a
 * WebSocket that failed to open or closed early), `bad` (a wrong body: never acceptable), `timeout`.
 */
interface Answer {
  answer: string;
  detail: string;
  bytes: number;
}

/**
 * The rule. An operation on tunnel t that started at `start` and ended at `end` is expected when
 *  - it is `ok`; or
 *  - some disruption d of t overlaps [start, end] (d.from ≤ end and d.to, if any, ≥ start) and
 *    either the operation started after d.settledAt and got SETTLED[d.kind], or it started before
 *    d.settledAt (or d has not settled) and got one of LOOSE[d.kind].
 * Everything else is unexpected: a non-200 outside any window, a 404 after a SIGKILL, a 503 after a
 * SIGTERM or revocation, a 502 or a cut after the disruption had settled, any `bad` or `timeout`.
 */
function judge(t: Tunnel, op: OpKind, start: number, result: Answer): void {
  const end = Date.now();
  const stats = ops[op];
  stats.count++;
  stats.bytes += result.bytes;
  if (result.answer === 'ok') {
    stats.ok++;
    return;
  }
  const windows = t.disruptions.filter((d) => d.from <= end && (d.to === undefined || d.to >= start));
  let explained = false;
  for (const d of windows) {
    const settled = SETTLED[d.kind];
    if (result.answer === settled && start >= d.from && d.settledAt === undefined) d.settledAt = end;
    // A hold lasts EXPOSE_SUBDOMAIN_GRACE: a tunnel still without its client by then answers 404
    // (only when its restart failed, which is a failure of its own).
    const lapsed = SETTLED[d.kind] === '503 tunnel_reconnecting' && start >= d.from + GRACE_MS && result.answer === '404 tunnel_not_found';
    const fits = lapsed || (d.settledAt !== undefined && start >= d.settledAt ? result.answer === settled : LOOSE[d.kind].has(result.answer));
    if (fits) {
      explained = true;
      d.answers[result.answer] = (d.answers[result.answer] ?? 0) + 1;
      break;
    }
  }
  if (explained) {
    stats.expected++;
    return;
  }
  stats.unexpected++;
  unexpectedCount++;
  unexpectedByAnswer[`${op}: ${result.answer}`] = (unexpectedByAnswer[`${op}: ${result.answer}`] ?? 0) + 1;
  if (unexpected.length < 500) {
    unexpected.push({
      atSeconds: at(end),
      startedAtSeconds: at(start),
      tunnel: t.subdomain,
      op,
      answer: result.answer,
      detail: result.detail,
      windows:
        windows.length === 0
          ? 'none'
          : windows.map((d) => `${d.kind} from ${at(d.from)}s${d.settledAt === undefined ? '' : ` settled ${at(d.settledAt)}s`} to ${d.to === undefined ? 'open' : `${at(d.to)}s`}`).join('; '),
    });
  }
}

const EXPECTED_BYTES = new Uint8Array(1024 * 1024).fill(DOWNLOAD_FILL);
const RANDOM_POOL = crypto.getRandomValues(new Uint8Array(1024 * 1024));
/** Code points for text messages: ASCII with one in eight of 2, 3 or 4 UTF-8 bytes, so a long message's 64 KiB frames split characters. */
const TEXT_POOL = Array.from({ length: 8192 }, (_, i) => (i % 8 === 5 ? ['é', '€', '😀'][i % 3]! : String.fromCharCode(32 + ((i * 7919) % 95))));
const randomText = (codePoints: number) => {
  let out = '';
  while (codePoints > 0) {
    const take = Math.min(codePoints, TEXT_POOL.length);
    const from = between(0, TEXT_POOL.length - take);
    out += TEXT_POOL.slice(from, from + take).join('');
    codePoints -= take;
  }
  return out;
};

/** A server-side answer that is not a 200: `<status> <X-Expose-Error>`. */
async function errorAnswer(res: Response): Promise<Answer> {
  const code = res.headers.get('x-expose-error') ?? 'none';
  let text = '';
  try {
    text = (await res.text()).slice(0, 200);
  } catch {
    // the answer's body was cut: its status is what counts
  }
  return { answer: `${res.status} ${code}`, detail: text.replace(/\s+/g, ' '), bytes: 0 };
}

function failure(error: unknown): Answer {
  const e = error as Error;
  if (e.name === 'TimeoutError' || e.name === 'AbortError') return { answer: 'timeout', detail: `${e.name}: ${e.message}`, bytes: 0 };
  return { answer: 'cut', detail: `${e.name}: ${e.message}`.slice(0, 200), bytes: 0 };
}

const visit = (t: Tunnel, path: string, init: RequestInit = {}) =>
  fetch(`http://127.0.0.1:${server.port}${path}`, { ...init, headers: { ...(init.headers as Record<string, string>), host: t.host }, signal: AbortSignal.timeout(OP_TIMEOUT_MS) });

/** GET / or another path with a query (the origin answers any path with its hello); one in ten a POST with an empty body. */
async function getSmall(t: Tunnel): Promise<Answer> {
  const roll = random();
  try {
    const res = await visit(t, roll < 0.45 ? '/' : `/page/${between(0, 9999)}?q=${between(0, 9999)}`, roll < 0.9 ? {} : { method: 'POST', body: new Uint8Array(0) });
    if (res.status !== 200) return await errorAnswer(res);
    const text = await res.text();
    if (text !== HELLO) return { answer: 'bad', detail: `body ${JSON.stringify(text.slice(0, 80))}`, bytes: text.length };
    return { answer: 'ok', detail: '', bytes: text.length };
  } catch (error) {
    return failure(error);
  }
}

async function getDownload(t: Tunnel): Promise<Answer> {
  const total = between(64, 512) * 1024 + between(0, 1023);
  try {
    const res = await visit(t, `/download?bytes=${total}`);
    if (res.status !== 200) return await errorAnswer(res);
    const body = new Uint8Array(await res.arrayBuffer());
    if (body.byteLength < total) return { answer: 'cut', detail: `short body: ${body.byteLength} of ${total} bytes`, bytes: body.byteLength };
    if (body.byteLength > total) return { answer: 'bad', detail: `long body: ${body.byteLength} of ${total} bytes`, bytes: body.byteLength };
    if (Buffer.compare(body, EXPECTED_BYTES.subarray(0, total)) !== 0) return { answer: 'bad', detail: `content differs from the origin's (${total} bytes)`, bytes: total };
    return { answer: 'ok', detail: '', bytes: total };
  } catch (error) {
    return failure(error);
  }
}

async function postUpload(t: Tunnel): Promise<Answer> {
  // At least one byte: the origin's /upload cannot read an empty body (Bun gives it a null body; it answers 500).
  const total = random() < 0.2 ? between(1, 1024) : between(1, 384) * 1024 + between(0, 1023);
  const offset = between(0, RANDOM_POOL.byteLength - total);
  try {
    const res = await visit(t, '/upload', { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: RANDOM_POOL.subarray(offset, offset + total) });
    if (res.status !== 200) return await errorAnswer(res);
    const text = await res.text();
    if (text !== String(total)) return { answer: 'bad', detail: `the origin read ${JSON.stringify(text.slice(0, 40))} of ${total} bytes`, bytes: total };
    return { answer: 'ok', detail: '', bytes: total };
  } catch (error) {
    return failure(error);
  }
}

/** What the server's refusal of a visitor's WebSocket upgrade means, by status (tunnel_busy cannot happen at this load). */
const WS_REFUSAL_CODES: Record<number, string> = { 404: 'tunnel_not_found', 502: 'tunnel_error', 503: 'tunnel_reconnecting', 504: 'tunnel_timeout' };

/** A WebSocket echo session: batches of text and binary messages (some over the 64 KiB frame size), each batch's echoes checked in order, then close 1000. */
function wsSession(t: Tunnel): Promise<Answer> {
  const count = between(4, 24);
  const messages: Array<string | Uint8Array> = [];
  for (let i = 0; i < count; i++) {
    if (random() < 0.5) {
      messages.push(`${i}:${randomText(random() < 0.1 ? between(40_000, 70_000) : between(0, 2000))}`);
    } else {
      const len = random() < 0.15 ? between(64 * 1024, 160 * 1024) : between(4, 8192);
      const from = between(0, RANDOM_POOL.byteLength - len);
      const bytes = RANDOM_POOL.slice(from, from + len);
      new DataView(bytes.buffer).setUint32(0, i);
      messages.push(bytes);
    }
  }
  return new Promise<Answer>((resolve) => {
    let settled = false;
    let opened = false;
    let received = 0;
    let sent = 0;
    let bytes = 0;
    let ws: WebSocket;
    // Bun's client gives the refused upgrade's status only in the error event's message.
    let refusedStatus: number | undefined;
    const finish = (answer: Answer) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      wsMessages += received;
      try {
        if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) ws.close();
      } catch {
        // already closing
      }
      resolve(answer);
    };
    const timer = setTimeout(() => finish({ answer: 'timeout', detail: `after ${received}/${count} echoes`, bytes }), OP_TIMEOUT_MS);
    const sendBatch = () => {
      const size = Math.min(count - sent, between(1, 8));
      for (let i = 0; i < size; i++) ws.send(messages[sent++]!);
    };
    try {
      ws = new WebSocket(`ws://127.0.0.1:${server.port}/ws`, { headers: { host: t.host } } as never);
    } catch (error) {
      resolve(failure(error));
      return;
    }
    ws.binaryType = 'arraybuffer';
    ws.addEventListener('open', () => {
      opened = true;
      sendBatch();
    });
    ws.addEventListener('error', (event) => {
      const match = /Expected 101 status code: (\d{3})/.exec(String((event as unknown as { message?: string }).message));
      if (match) refusedStatus = Number(match[1]);
    });
    ws.addEventListener('message', (event) => {
      if (settled) return;
      const want = messages[received]!;
      const got = event.data as string | ArrayBuffer;
      const same = typeof want === 'string' ? got === want : got instanceof ArrayBuffer && Buffer.compare(new Uint8Array(got), want) === 0;
      if (!same) {
        const describe = (m: string | ArrayBuffer | Uint8Array) => (typeof m === 'string' ? `text of ${m.length} UTF-16 units "${m.slice(0, 12)}"` : `binary of ${m.byteLength} B`);
        let where = '';
        if (typeof want === 'string' && typeof got === 'string') {
          let k = 0;
          while (k < want.length && want.charCodeAt(k) === got.charCodeAt(k)) k++;
          where = `; first difference at unit ${k}: got ${got.charCodeAt(k)}, sent ${want.charCodeAt(k)}`;
        }
        finish({ answer: 'bad', detail: `echo ${received} of ${count}: got ${describe(got)}, sent ${describe(want)}${where}`, bytes });
        return;
      }
      bytes += typeof want === 'string' ? Buffer.byteLength(want) : want.byteLength;
      received++;
      if (received === count) ws.close(1000, 'done');
      else if (received === sent) sendBatch();
    });
    ws.addEventListener('close', (event) => {
      if (!opened && refusedStatus !== undefined) {
        // The status is all Bun shows; X-Expose-Error is inferred from it (the server's only answers with these statuses).
        return finish({ answer: `${refusedStatus} ${WS_REFUSAL_CODES[refusedStatus] ?? 'unknown'}`, detail: 'WebSocket upgrade refused', bytes });
      }
      if (!opened) return finish({ answer: 'cut', detail: `upgrade failed (close ${event.code})`, bytes });
      if (received < count) return finish({ answer: 'cut', detail: `closed ${event.code} "${event.reason}" after ${received}/${count} echoes`, bytes });
      if (event.code !== 1000) return finish({ answer: 'cut', detail: `all ${count} echoes, then close ${event.code} "${event.reason}" instead of 1000`, bytes });
      finish({ answer: 'ok', detail: '', bytes });
    });
  });
}

async function operate(t: Tunnel, op: OpKind, run: (t: Tunnel) => Promise<Answer>): Promise<Answer> {
  const start = Date.now();
  inFlight++;
  try {
    const result = await run(t);
    judge(t, op, start, result);
    return result;
  } finally {
    inFlight--;
  }
}

// ─────────────────────────────── chaos ───────────────────────────────

interface ComebackRecord {
  atSeconds: number;
  tunnel: string;
  kind: DisruptionKind;
  ok: boolean;
  /** From the kill, the cut or the DELETE to the `ready` event of the tunnel's new connection. */
  downMs: number | undefined;
  /** From starting the replacement (for a drop: from the cut) to its `ready`, and to the first 200 through it. */
  restartToReadyMs: number | undefined;
  restartTo200Ms: number | undefined;
  /** Revocations: DELETE answered → first 404 at the host; → the old client exited (code). */
  deleteTo404Ms?: number;
  deleteToExitMs?: number;
  exitCode?: number | null;
  /** SIGTERM: signal → exit (code). */
  termToExitMs?: number;
  problem?: string;
}
const comebacks: ComebackRecord[] = [];
const chaosFailures: Array<{ atSeconds: number; tunnel: string; what: string }> = [];
const chaosFailed = (t: Tunnel, what: string) => {
  chaosFailures.push({ atSeconds: at(), tunnel: t.subdomain, what });
  log(`FAILURE ${t.subdomain}: ${what}`);
};

/** Starts a client for `t` with `key`; watches for it ending when nobody asked it to. */
function launch(t: Tunnel, key: string): ClientProcess {
  const client = new ClientProcess(t.subdomain, key);
  t.client = client;
  t.expectEnd = undefined;
  void client.exited.then((code) => {
    if (t.client === client && t.expectEnd === undefined && !shuttingDown) {
      chaosFailed(t, `client exited on its own (${code ?? client.child.signalCode}); ${client.describe()}`);
    }
  });
  return client;
}

/**
 * Waits for `client` to be back on `t`'s subdomain: its `count`th `ready` event names that subdomain,
 * and a visitor's request through it answers 200 within COMEBACK_MS of `sinceMs` (the restart, or
 * the cut). Closes the disruption window at that `ready` event.
 */
async function awaitBack(t: Tunnel, client: ClientProcess, count: number, since: Stopwatch, d: Disruption, record: ComebackRecord): Promise<boolean> {
  const sinceMs = Date.now() - since.raw;
  try {
    // The hard stop is generous; the bound is judged on awake time below.
    const { atMs, event: ready } = await client.waitReady(3 * COMEBACK_MS, count);
    if (since.awake > COMEBACK_MS + (Date.now() - atMs)) throw new Error(`ready only ${atMs - sinceMs} ms after the restart (more than ${COMEBACK_MS} ms awake)`);
    d.to = atMs;
    record.restartToReadyMs = atMs - sinceMs;
    record.downMs = atMs - d.from;
    const publicUrl = String(ready.public_url);
    if (ready.subdomain !== t.subdomain || !publicUrl.startsWith(`http://${t.subdomain}.${DOMAIN}:`)) {
      throw new Error(`came back as ${JSON.stringify(ready.subdomain)} (${publicUrl}) instead of ${t.subdomain}`);
    }
    // The first visitor after `ready` must get a 200; keep trying (each try judged) until the bound.
    for (;;) {
      const result = await operate(t, 'probe', getSmall);
      if (result.answer === 'ok') {
        record.restartTo200Ms = since.raw;
        break;
      }
      if (since.awake > COMEBACK_MS) throw new Error(`no 200 within ${COMEBACK_MS} ms (last: ${result.answer} ${result.detail})`);
      await Bun.sleep(100);
    }
    if (since.awake > COMEBACK_MS) throw new Error(`first 200 only ${record.restartTo200Ms} ms after the restart (more than ${COMEBACK_MS} ms awake)`);
    record.ok = record.problem === undefined;
    return true;
  } catch (error) {
    d.to = undefined;
    record.problem ??= (error as Error).message;
    chaosFailed(t, `not back on its subdomain: ${(error as Error).message}`);
    return false;
  }
}

/**
 * Starts a replacement client for `t` with `key` and waits for it to be back. A failure is recorded
 * (the run fails) and the start is tried again every 2 s, the window kept open, so that the rest of
 * the run still tests something (a failed spawn, say, when node_modules is being reinstalled).
 */
async function comeBack(t: Tunnel, key: string, d: Disruption, record: ComebackRecord): Promise<void> {
  for (;;) {
    const spawned = new Stopwatch();
    let client: ClientProcess | undefined;
    try {
      client = launch(t, key);
    } catch (error) {
      record.problem ??= `could not start a client: ${(error as Error).message}`;
      chaosFailed(t, `could not start a client: ${(error as Error).message}`);
    }
    if (client && (await awaitBack(t, client, 1, spawned, d, record))) return;
    if (client) {
      t.expectEnd = d.kind;
      await stop(client.child, 'SIGKILL');
    }
    if (Date.now() > deadline + 30_000) {
      t.broken = true;
      d.to = Date.now();
      chaosFailed(t, 'given up: the tunnel stays without a client');
      return;
    }
    await Bun.sleep(2000);
  }
}

/** Local ports of `pid`'s established TCP connections to the server (its control connection), from `ss`. */
function controlPorts(pid: number): number[] {
  const out = Bun.spawnSync(['ss', '-tnpH', 'state', 'established', 'dst', '127.0.0.1', 'dport', '=', `:${server.port}`]).stdout.toString();
  const ports: number[] = [];
  for (const line of out.split('\n')) {
    const match = /127\.0\.0\.1:(\d+)\s+127\.0\.0\.1:\d+\s+users:.*pid=(\d+),/.exec(line);
    if (match && Number(match[2]) === pid) ports.push(Number(match[1]));
  }
  return ports;
}

/** Whether `ss -K` can destroy sockets here (root, and a kernel with socket destroy): checked once, on a socket pair of our own. */
async function canDropSockets(): Promise<boolean> {
  let accepted = 0;
  const listener = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { open: () => void accepted++, data: () => {} } });
  let closed = false;
  const socket = await Bun.connect({ hostname: '127.0.0.1', port: listener.port, socket: { data: () => {}, close: () => void (closed = true), error: () => void (closed = true) } });
  const result = Bun.spawnSync(['ss', '-K', '-tn', 'dst', '127.0.0.1', 'dport', '=', `:${listener.port}`, 'sport', '=', `:${socket.localPort}`], { stdout: 'ignore', stderr: 'ignore' });
  for (let i = 0; i < 50 && !closed; i++) await Bun.sleep(10);
  socket.end();
  listener.stop(true);
  return result.exitCode === 0 && closed && accepted === 1;
}

/**
 * Cuts `t`'s control connection under a live client (`ss -K` destroys the client's socket; the server
 * sees a reset): the same process must reconnect by itself (backoff, resume token) and be back on
 * its subdomain within COMEBACK_MS, without ever stopping.
 */
async function dropConnection(t: Tunnel): Promise<void> {
  const client = t.client;
  const ports = controlPorts(client.child.pid);
  if (ports.length !== 1) {
    chaosFailed(t, `expected one control connection from pid ${client.child.pid}, found ${ports.length}; ${client.describe()}`);
    return;
  }
  const d: Disruption = { kind: 'drop', from: Date.now(), settledAt: undefined, to: undefined, answers: {} };
  const record: ComebackRecord = { atSeconds: at(), tunnel: t.subdomain, kind: 'drop', ok: false, downMs: undefined, restartToReadyMs: undefined, restartTo200Ms: undefined };
  comebacks.push(record);
  t.disruptions.push(d);
  const readiesBefore = client.readies.length;
  const sinceCut = new Stopwatch();
  const cut = Bun.spawnSync(['ss', '-K', '-tn', 'dst', '127.0.0.1', 'dport', '=', `:${server.port}`, 'sport', '=', `:${ports[0]}`], { stdout: 'ignore', stderr: 'pipe' });
  if (cut.exitCode !== 0) {
    d.to = Date.now();
    record.problem = `ss -K failed: ${cut.stderr.toString().trim()}`;
    chaosFailed(t, record.problem);
    return;
  }
  if (!(await awaitBack(t, client, readiesBefore + 1, sinceCut, d, record))) {
    // Not back by itself: replace the process, so the rest of the run still has this tunnel.
    t.expectEnd = 'drop';
    await stop(client.child, 'SIGKILL');
    await comeBack(t, keyOf.get(t)!, d, record);
  }
  const states = client.statesSince(d.from).map((s) => s.state);
  if (states.includes('Error')) chaosFailed(t, `the client reported Error after its connection was cut: ${JSON.stringify(client.statesSince(d.from))}`);
}

/** Kills `t`'s client with `signal`, waits a random 0–3 s, and starts it again with the same key. */
async function killAndRestart(t: Tunnel, key: string, signal: 'SIGKILL' | 'SIGTERM'): Promise<void> {
  const kind: DisruptionKind = signal === 'SIGKILL' ? 'sigkill' : 'sigterm';
  const d: Disruption = { kind, from: Date.now(), settledAt: undefined, to: undefined, answers: {} };
  const record: ComebackRecord = { atSeconds: at(), tunnel: t.subdomain, kind, ok: false, downMs: undefined, restartToReadyMs: undefined, restartTo200Ms: undefined };
  comebacks.push(record);
  t.disruptions.push(d);
  const old = t.client;
  t.expectEnd = kind;
  old.child.kill(signal);
  if (signal === 'SIGTERM') {
    const exit = await waitExit(old, TERM_EXIT_MS);
    record.termToExitMs = exit?.ms;
    record.exitCode = exit?.code;
    if (exit?.code !== 0) {
      record.problem = exit === undefined ? `still running ${TERM_EXIT_MS} ms after SIGTERM` : `exit ${exit.code} after SIGTERM`;
      chaosFailed(t, `${record.problem}; ${old.describe()}`);
      if (exit === undefined) await stop(old.child, 'SIGKILL');
    }
  } else await old.exited;
  await Bun.sleep(between(0, 3000));
  await comeBack(t, key, d, record);
}

/**
 * Revokes `t`'s key (DELETE with the user's JWT): its client must exit 1 saying the key was revoked,
 * without reconnecting, and the host must answer 404 within REVOKED_404_MS; then a new key and a new
 * client for the same subdomain, which must get it.
 */
async function revokeAndReplace(t: Tunnel): Promise<void> {
  const d: Disruption = { kind: 'revoke', from: Date.now(), settledAt: undefined, to: undefined, answers: {} };
  const record: ComebackRecord = { atSeconds: at(), tunnel: t.subdomain, kind: 'revoke', ok: false, downMs: undefined, restartToReadyMs: undefined, restartTo200Ms: undefined };
  comebacks.push(record);
  t.disruptions.push(d);
  const old = t.client;
  t.expectEnd = 'revoke';
  const res = await api('DELETE', `/api/v1/api-keys/${t.keyId}`, JWT);
  const sinceDelete = new Stopwatch();
  await res.arrayBuffer();
  if (res.status !== 204) {
    chaosFailed(t, `DELETE key answered ${res.status}`);
    t.expectEnd = undefined;
    d.to = Date.now();
    return;
  }
  // The host must answer 404 promptly; probes are judged like any visitor.
  const notFound = (async () => {
    for (;;) {
      const result = await operate(t, 'probe', getSmall);
      if (result.answer === SETTLED.revoke) return sinceDelete.awake <= REVOKED_404_MS ? sinceDelete.raw : undefined;
      if (sinceDelete.awake > REVOKED_404_MS) return undefined;
      await Bun.sleep(25);
    }
  })();
  const [to404, exit] = await Promise.all([notFound, waitExit(old, REVOKED_EXIT_MS)]);
  record.deleteTo404Ms = to404;
  if (to404 === undefined) chaosFailed(t, `the host did not answer 404 within ${REVOKED_404_MS} ms of the key's deletion`);
  if (exit === undefined) {
    chaosFailed(t, `client still running ${REVOKED_EXIT_MS} ms after its key was revoked; ${old.describe()}`);
    await stop(old.child, 'SIGKILL');
  } else {
    record.deleteToExitMs = exit.ms;
    record.exitCode = exit.code;
    const states = old.statesSince(d.from);
    const error = states.find((s) => s.state === 'Error');
    const reconnected = states.some((s) => s.state === 'Reconnecting' || s.state === 'Connecting');
    if (exit.code !== 1) chaosFailed(t, `revoked client exited ${exit.code}, not 1; ${old.describe()}`);
    if (!error || error.detail !== 'API key revoked' || !old.stderr.includes('API key revoked')) chaosFailed(t, `revoked client did not say "API key revoked": states ${JSON.stringify(states)}; ${old.describe()}`);
    if (reconnected) chaosFailed(t, `revoked client tried to reconnect: states ${JSON.stringify(states)}`);
  }
  // Still 404 (not 503: no grace after a revocation) until the new client is up; checked by the visitors and this probe.
  await operate(t, 'probe', getSmall);
  const fresh = await newKey();
  t.keyId = fresh.id;
  keyOf.set(t, fresh.key);
  await comeBack(t, fresh.key, d, record);
  if (record.problem === undefined && (to404 === undefined || exit === undefined)) record.ok = false;
}

// ─────────────────────────────── set-up ───────────────────────────────

const keyOf = new Map<Tunnel, string>();
const fdsBeforeClients = openFds(server.child.pid);
log(`seed ${SEED}; server on ${server.url}, origin on ${originPort}; starting ${TUNNELS} clients...`);
for (let start = 0; start < TUNNELS; start += 5) {
  await Promise.all(
    Array.from({ length: Math.min(5, TUNNELS - start) }, async (_, j) => {
      const index = start + j;
      const { id, key } = await newKey();
      const subdomain = `soak-${index}`;
      const t = { index, subdomain, host: `${subdomain}.${DOMAIN}`, keyId: id, busy: false, broken: false, expectEnd: undefined, disruptions: [] } as unknown as Tunnel;
      tunnels[index] = t;
      keyOf.set(t, key);
      const client = launch(t, key);
      const { event: ready } = await client.waitReady(60_000);
      if (ready.subdomain !== subdomain) throw new Error(`${subdomain}: got ${String(ready.subdomain)}`);
    }),
  );
}
for (const t of tunnels) {
  const check = await getSmall(t);
  if (check.answer !== 'ok') throw new Error(`${t.subdomain} answered ${check.answer} ${check.detail} before any chaos`);
}
const setupSeconds = round((Date.now() - runStartMs) / 1000, 1);
log(`all ${TUNNELS} tunnels up after ${setupSeconds} s; soaking for ${DURATION_MS / 1000} s (kill every ~${KILL_EVERY_MS / 1000} s, cut every ~${DROP_EVERY_MS / 1000} s, revoke every ${REVOKE_EVERY_MS / 1000} s)`);

// ─────────────────────────────── the run ───────────────────────────────

runStartMs = Date.now();
const deadline = runStartMs + DURATION_MS;
const chaosStop = deadline - CHAOS_STOP_BEFORE_END_MS;
const pickTunnel = () => tunnels[Math.floor(random() * tunnels.length)]!;

async function httpVisitor(): Promise<void> {
  while (Date.now() < deadline) {
    const t = pickTunnel();
    const roll = random();
    if (roll < 0.55) await operate(t, 'small request', getSmall);
    else if (roll < 0.75) await operate(t, 'GET download', getDownload);
    else await operate(t, 'POST upload', postUpload);
  }
}

async function wsVisitor(): Promise<void> {
  while (Date.now() < deadline) await operate(pickTunnel(), 'WebSocket session', wsSession);
}

const chaosTasks: Promise<void>[] = [];
const kills = { SIGKILL: 0, SIGTERM: 0 };
let drops = 0;
let revocations = 0;
const DROPS_POSSIBLE = DROP_EVERY_MS > 0 && (await canDropSockets());
if (DROP_EVERY_MS > 0 && !DROPS_POSSIBLE) log('ss -K cannot destroy sockets here (needs root and CONFIG_INET_DIAG_DESTROY): no connection cuts in this run');

/** Picks an idle tunnel and runs `action` on it in the background; false when none is free or too many are down. */
function disrupt(action: (t: Tunnel) => Promise<void>): boolean {
  const idle = tunnels.filter((t) => !t.busy && !t.broken);
  if (idle.length === 0 || tunnels.filter((t) => t.busy).length >= MAX_DOWN) return false;
  const t = idle[Math.floor(random() * idle.length)]!;
  t.busy = true;
  chaosTasks.push(
    action(t)
      .catch((error) => chaosFailed(t, `chaos step failed: ${(error as Error).stack ?? error}`))
      .finally(() => {
        t.busy = false;
      }),
  );
  return true;
}

async function killer(): Promise<void> {
  await Bun.sleep(CHAOS_START_MS);
  while (Date.now() < chaosStop) {
    const signal = random() < 0.5 ? 'SIGKILL' : 'SIGTERM';
    if (disrupt((t) => killAndRestart(t, keyOf.get(t)!, signal))) kills[signal]++;
    await Bun.sleep(KILL_EVERY_MS * (0.5 + random()));
  }
}

async function dropper(): Promise<void> {
  if (!DROPS_POSSIBLE) return;
  await Bun.sleep(CHAOS_START_MS + DROP_EVERY_MS * random());
  while (Date.now() < chaosStop) {
    if (disrupt(dropConnection)) drops++;
    await Bun.sleep(DROP_EVERY_MS * (0.5 + random()));
  }
}

async function revoker(): Promise<void> {
  let next = runStartMs + REVOKE_EVERY_MS;
  while (next < chaosStop) {
    await Bun.sleep(Math.max(0, next - Date.now()));
    // Wait for a free tunnel rather than skip this revocation.
    let started = disrupt(revokeAndReplace);
    while (!started && Date.now() < chaosStop) {
      await Bun.sleep(200);
      started = disrupt(revokeAndReplace);
    }
    if (started) revocations++;
    next += REVOKE_EVERY_MS;
  }
}

const samples: Array<ResourceSample & { liveClients: number; inFlight: number; operations: number }> = [];
const totalOps = () => OP_KINDS.reduce((sum, k) => sum + ops[k].count, 0);
const sample = () => {
  samples.push({
    atSeconds: round((Date.now() - runStartMs) / 1000, 1),
    rssMiB: round(rssBytes(server.child.pid) / MIB, 1),
    fds: openFds(server.child.pid),
    liveClients: tunnels.filter((t) => t.client.child.exitCode === null && t.client.child.signalCode === null && t.client.ready !== undefined).length,
    inFlight,
    operations: totalOps(),
  });
  const last = samples.at(-1)!;
  if (samples.length % Math.max(1, Math.round(5000 / SAMPLE_EVERY_MS)) !== 0) return;
  log(`rss ${last.rssMiB} MiB, fds ${last.fds}, ${last.operations} operations (${unexpectedCount} unexpected), ${kills.SIGKILL + kills.SIGTERM} kills, ${drops} cuts, ${revocations} revocations`);
};
const sampler = setInterval(sample, SAMPLE_EVERY_MS);

const runners = [...Array.from({ length: HTTP_VISITORS }, httpVisitor), ...Array.from({ length: WS_VISITORS }, wsVisitor)];
await Promise.all([killer(), dropper(), revoker()]);
await Promise.all(runners);
await Promise.all(chaosTasks);
clearInterval(sampler);
const elapsedSeconds = (Date.now() - runStartMs) / 1000;

// Every tunnel must be up at the end, on its own subdomain, serving 200.
const finalProblems: string[] = [];
for (const t of tunnels) {
  const alive = t.client.child.exitCode === null && t.client.child.signalCode === null;
  const result = await operate(t, 'probe', getSmall);
  if (!alive || t.client.ready?.subdomain !== t.subdomain || result.answer !== 'ok') finalProblems.push(`${t.subdomain}: alive ${alive}, ready as ${String(t.client.ready?.subdomain)}, answer ${result.answer}`);
}
for (const p of finalProblems) chaosFailures.push({ atSeconds: at(), tunnel: p.split(':')[0]!, what: `final check: ${p}` });
const fdsAtEnd = openFds(server.child.pid);

// Shutdown: every client must leave cleanly on SIGTERM (exit 0).
shuttingDown = true;
const termCodes = await Promise.all(
  tunnels.map(async (t) => {
    t.client.child.kill('SIGTERM');
    const exit = await waitExit(t.client, TERM_EXIT_MS);
    if (exit === undefined) await stop(t.client.child, 'SIGKILL');
    return exit?.code ?? 'hung';
  }),
);
const badTerms = termCodes.filter((c) => c !== 0).length;
if (badTerms > 0) chaosFailures.push({ atSeconds: at(), tunnel: '*', what: `${badTerms} clients did not exit 0 on the final SIGTERM: ${JSON.stringify(termCodes)}` });
await Bun.sleep(500);
const fdsNoTunnels = openFds(server.child.pid);
await stop(origin, 'SIGKILL');
await stop(server.child, 'SIGTERM');
clearInterval(stallTicker);
const serverExit = server.child.exitCode;
const serverStderr = (await server.stderr).trim();
/** Errors Bun printed on the server's stderr (outside its JSON log): one `error: ...` line each. */
const stderrTraces = serverStderr.split('\n').filter((l) => /^\w*(Error|error):? /.test(l)).length;
// The start-up warning about open registration is expected (the soak registers its user through the API).
const logLines = readFileSync(LOG_FILE, 'utf8')
  .split('\n')
  .filter((l) => l !== '' && !l.includes('"msg":"registration is open'));
rmSync(workDir, { recursive: true, force: true });

// ─────────────────────────────── verdict ───────────────────────────────

// Descriptors come and go with the load: the server holds one per tunnel connection (at most MAX_DOWN
// of them away at once) and one per visitor connection (HTTP visitors, WebSocket visitors and the
// probes of tunnels coming back), so that much spread is allowed, plus a little; the drift between
// the medians of the first and last thirds must stay small. And once every client has left, the
// server must be back near where it was before any client came (visitor keep-alive sockets aside).
const FD_SPREAD = MAX_DOWN * 2 + HTTP_VISITORS + WS_VISITORS + 4;
const FD_DRIFT = 4;
const FD_LEFTOVER = HTTP_VISITORS + WS_VISITORS + MAX_DOWN + 4;
const fdsLeftOver = fdsNoTunnels - fdsBeforeClients;
const growth = judgeGrowth(samples, { warmupSeconds: WARMUP_MS / 1000, fdSpread: FD_SPREAD, fdDrift: FD_DRIFT });
const restarts = comebacks.filter((c) => c.kind === 'sigkill' || c.kind === 'sigterm');
const cuts = comebacks.filter((c) => c.kind === 'drop');
const revoked = comebacks.filter((c) => c.kind === 'revoke');
const stat = (xs: Array<number | undefined>) => {
  const v = xs.filter((x): x is number => x !== undefined);
  return v.length === 0 ? null : { n: v.length, p50: Math.round(percentile(v, 50)), p99: Math.round(percentile(v, 99)), max: Math.round(Math.max(...v)) };
};
const windowAnswers = (kind: DisruptionKind) => {
  const sum: Record<string, number> = {};
  for (const t of tunnels) for (const d of t.disruptions) if (d.kind === kind) for (const [k, n] of Object.entries(d.answers)) sum[k] = (sum[k] ?? 0) + n;
  return sum;
};
const problems = [
  unexpectedCount > 0 ? `${unexpectedCount} unexpected answers` : '',
  chaosFailures.length > 0 ? `${chaosFailures.length} chaos failures` : '',
  growth.rssFlat ? '' : 'server RSS growing',
  growth.fdsFlat ? '' : 'server descriptors growing',
  fdsLeftOver <= FD_LEFTOVER ? '' : `${fdsLeftOver} more server descriptors after the clients left than before they came`,
  ...OP_KINDS.filter((k) => k !== 'probe' && ops[k].ok === 0).map((k) => `no successful ${k}`),
].filter(Boolean);

const summary = {
  date: new Date().toISOString(),
  seed: SEED,
  settings: {
    seconds: DURATION_MS / 1000,
    tunnels: TUNNELS,
    revokeEverySeconds: REVOKE_EVERY_MS / 1000,
    killEverySeconds: KILL_EVERY_MS / 1000,
    dropEverySeconds: DROPS_POSSIBLE ? DROP_EVERY_MS / 1000 : 0,
    sampleEverySeconds: SAMPLE_EVERY_MS / 1000,
    httpVisitors: HTTP_VISITORS,
    wsVisitors: WS_VISITORS,
    comebackSeconds: COMEBACK_MS / 1000,
    warmupSeconds: WARMUP_MS / 1000,
    maxDownAtOnce: MAX_DOWN,
    fdSpread: FD_SPREAD,
    fdDrift: FD_DRIFT,
    fdLeftOver: FD_LEFTOVER,
  },
  setupSeconds,
  seconds: round(elapsedSeconds, 0),
  operations: ops,
  operationsPerSecond: round(totalOps() / elapsedSeconds, 0),
  wsEchoes: wsMessages,
  /** How long the soak's own event loop was held up (the machine is shared); bounds count awake time only. */
  soakStalls: { totalSeconds: round(stalledTotalMs / 1000, 1), maxMs: Math.round(stallMaxMs) },
  unexpected: { count: unexpectedCount, byAnswer: unexpectedByAnswer, first: unexpected },
  chaos: {
    kills,
    restartsBack: restarts.filter((c) => c.ok).length,
    cuts: cuts.length,
    cutsBack: cuts.filter((c) => c.ok).length,
    revocations: revoked.length,
    revocationsReplaced: revoked.filter((c) => c.ok).length,
    killToReadyMs: stat(restarts.map((c) => c.downMs)),
    restartToReadyMs: stat(restarts.map((c) => c.restartToReadyMs)),
    restartTo200Ms: stat(restarts.map((c) => c.restartTo200Ms)),
    sigtermToExitMs: stat(restarts.map((c) => c.termToExitMs)),
    cutToReadyMs: stat(cuts.map((c) => c.restartToReadyMs)),
    cutTo200Ms: stat(cuts.map((c) => c.restartTo200Ms)),
    revokeTo404Ms: stat(revoked.map((c) => c.deleteTo404Ms)),
    revokeToClientExitMs: stat(revoked.map((c) => c.deleteToExitMs)),
    replacementTo200Ms: stat(revoked.map((c) => c.restartTo200Ms)),
    answersInWindows: { sigkill: windowAnswers('sigkill'), sigterm: windowAnswers('sigterm'), drop: windowAnswers('drop'), revoke: windowAnswers('revoke') },
    failures: chaosFailures,
    events: comebacks,
  },
  server: {
    rssMiB: growth.rssMiB,
    fds: { ...growth.fds, beforeClients: fdsBeforeClients, atEndWithTunnels: fdsAtEnd, afterClientsLeft: fdsNoTunnels },
    rssFlat: growth.rssFlat,
    fdsFlat: growth.fdsFlat,
    exitCode: serverExit,
    logWarningsAndErrors: logLines.length,
    logFirstLines: logLines.slice(0, 20),
    stderrStackTraces: stderrTraces,
    stderr: serverStderr.slice(0, 4000),
  },
  problems,
  samples,
};
const outDir = join(import.meta.dir, 'results');
mkdirSync(outDir, { recursive: true });
writeFileSync(join(outDir, 'tunnel-soak.json'), `${JSON.stringify(summary, null, 2)}\n`);

const pad = (s: string | number, n: number) => String(s).padStart(n);
const ms = (s: ReturnType<typeof stat>) => (s === null ? '-' : `p50 ${s.p50} ms, p99 ${s.p99} ms, max ${s.max} ms`);
const lines = [
  `tunnel soak: ${summary.seconds} s (+${setupSeconds} s set-up), ${TUNNELS} tunnels, seed ${SEED}: ${problems.length === 0 ? 'PASS' : `FAIL (${problems.join(', ')})`}`,
  '',
  `  ${'operation'.padEnd(18)} ${pad('count', 8)} ${pad('200 ok', 8)} ${pad('in window', 9)} ${pad('unexpected', 10)} ${pad('MiB', 8)}`,
  ...OP_KINDS.map((k) => `  ${k.padEnd(18)} ${pad(ops[k].count, 8)} ${pad(ops[k].ok, 8)} ${pad(ops[k].expected, 9)} ${pad(ops[k].unexpected, 10)} ${pad(round(ops[k].bytes / MIB, 1), 8)}`),
  `  ${summary.operationsPerSecond} operations/s; ${wsMessages} WebSocket echoes checked; the soak's event loop stalled ${summary.soakStalls.totalSeconds} s in all (longest ${summary.soakStalls.maxMs} ms)`,
  '',
  `  kills: ${kills.SIGKILL} SIGKILL + ${kills.SIGTERM} SIGTERM, restarted after 0-3 s; back on their subdomain: ${summary.chaos.restartsBack} of ${restarts.length}`,
  `    restart -> ready: ${ms(summary.chaos.restartToReadyMs)}; -> first 200: ${ms(summary.chaos.restartTo200Ms)} (bound ${COMEBACK_MS} ms)`,
  `    kill -> ready again: ${ms(summary.chaos.killToReadyMs)}; SIGTERM -> exit 0: ${ms(summary.chaos.sigtermToExitMs)}`,
  `  connections cut (ss -K): ${cuts.length}${DROPS_POSSIBLE ? '' : ' (not possible here)'}; back by themselves: ${summary.chaos.cutsBack} of ${cuts.length}`,
  `    cut -> ready: ${ms(summary.chaos.cutToReadyMs)}; -> first 200: ${ms(summary.chaos.cutTo200Ms)}`,
  `  revocations: ${revoked.length}; replaced on their subdomain: ${summary.chaos.revocationsReplaced} of ${revoked.length}`,
  `    DELETE -> host 404: ${ms(summary.chaos.revokeTo404Ms)} (bound ${REVOKED_404_MS} ms); -> client exit 1: ${ms(summary.chaos.revokeToClientExitMs)}`,
  `  answers inside windows: ${Object.entries(summary.chaos.answersInWindows).map(([k, v]) => `${k} ${JSON.stringify(v)}`).join(', ')}`,
  '',
  `  server RSS: ${growth.rssMiB.earlyMedian} MiB early -> ${growth.rssMiB.lateMedian} MiB late (min ${growth.rssMiB.min}, max ${growth.rssMiB.max}; ${samples[0]?.rssMiB} at the first sample, ${samples.at(-1)?.rssMiB} at the last) ${growth.rssFlat ? 'flat' : 'GROWING'}`,
  `  server fds: ${growth.fds.min}..${growth.fds.max}, median ${growth.fds.earlyMedian} early -> ${growth.fds.lateMedian} late ${growth.fdsFlat ? 'flat' : 'GROWING'}; ${fdsBeforeClients} before the clients came, ${fdsAtEnd} at the end, ${fdsNoTunnels} once they left`,
  `  server log (warn and above): ${logLines.length} lines; exit ${serverExit}; stderr: ${serverStderr === '' ? 'empty' : `${stderrTraces} errors printed by Bun (see tunnel-soak.json), first: ${JSON.stringify(serverStderr.split('\n').find((l) => /^\w*(Error|error):? /.test(l)) ?? serverStderr.slice(0, 200))}`}`,
];
if (chaosFailures.length > 0) lines.push('', `  chaos failures (${chaosFailures.length}):`, ...chaosFailures.slice(0, 20).map((f) => `    ${f.atSeconds}s ${f.tunnel}: ${f.what.slice(0, 600)}`));
if (unexpectedCount > 0) {
  lines.push('', `  unexpected answers (${unexpectedCount}): ${JSON.stringify(unexpectedByAnswer)}`);
  for (const u of unexpected.slice(0, 20)) lines.push(`    ${u.startedAtSeconds}s..${u.atSeconds}s ${u.tunnel} ${u.op}: ${u.answer} (${u.detail}) windows: ${u.windows}`);
}
if (logLines.length > 0) lines.push('', '  server log:', ...logLines.slice(0, 10).map((l) => `    ${l.slice(0, 400)}`));
process.stdout.write(`${lines.join('\n')}\n`);
process.exit(problems.length === 0 ? 0 : 1);
