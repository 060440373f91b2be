/**
 * Tunnel benchmarks (issue 12: T1, T3, T4, T5, T6, T7, T8, T9): the real server (`bun src/index.ts`) and the real
 * `expose` client (`bun src/client/index.ts`) from source, on loopback, in front of a plain Bun.serve
 * origin in its own process (bench/servers/tunnel-origin.ts). Every judged figure is a ratio against
 * the same load sent directly to that origin, alternated within one run.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BUN, CORES, cpuMs, freePort, pinned, readTaggedLine, rssBytes, stop, type Child } from '../lib/process.ts';
import { repeatedBody } from '../lib/bytes.ts';
import { median, percentile, round } from '../lib/stats.ts';
import { parseWrk, runWrk, type LoadSpec, type WrkResult } from '../lib/wrk.ts';
import { openMuxTunnel, openMuxTunnels, type MuxTunnel } from '../lib/mux-tunnel.ts';
import { startLocaltunnel, type Localtunnel } from '../lib/localtunnel.ts';

const ROOT = join(import.meta.dir, '..', '..');
const SERVER_ENTRY = join(ROOT, 'src', 'index.ts');
const CLIENT_ENTRY = join(ROOT, 'src', 'client', 'index.ts');
const ORIGIN = join(import.meta.dir, '..', 'servers', 'tunnel-origin.ts');
const WS_LOAD = join(import.meta.dir, '..', 'servers', 'ws-load.ts');
const BUN_RELAY = join(import.meta.dir, '..', 'servers', 'bun-relay.ts');
const MUX_TUNNEL = join(import.meta.dir, '..', 'lib', 'mux-tunnel.ts');
const DOMAIN = 'expose.test';
const SUBDOMAIN = 'bench';
/** T5's stalled visitor asks for this much (16 GiB): far more than it could ever be sent while it never reads. */
const STALLED_DOWNLOAD_BYTES = 2 ** 34;
/** T5: longest wait for the stalled visitor's status line, headers and first body byte, in ms. */
const STALLER_START_TIMEOUT_MS = 10_000;
/** T5: time between the stalled visitor's first body byte and the measured download, in ms: its response fills the socket buffers and the windows. */
const STALL_FILL_MS = 2000;
/**
 * T5's stalled visitor, run as `bash -c STALLER_SCRIPT staller PORT HOST BYTES`: a raw socket
 * (`/dev/tcp`), `GET /download?bytes=BYTES`, then the status line, the headers and one body byte are
 * read, so the row cannot pass on a refused or never-started stream; it prints
 * `STALLED {"status":"<status line>"}` and `exec sleep` keeps the socket open, never read again.
 * bash's `read` takes a socket one byte at a time, so nothing past that first body byte is consumed.
 * No timeouts in bash: a read that hangs is ended by STALLER_START_TIMEOUT_MS and the suite's clean-up.
 */
const STALLER_SCRIPT = [
  "cr=$'\\r'",
  'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1',
  'printf \'GET /download?bytes=%s HTTP/1.1\\r\\nHost: %s\\r\\n\\r\\n\' "$3" "$2" >&3',
  'IFS= read -r status <&3 || { echo "T5 staller: no status line" >&2; exit 2; }',
  'while IFS= read -r header <&3; do [ "${header%"$cr"}" = "" ] && break; done',
  'IFS= read -r -N 1 byte <&3 || { echo "T5 staller: no body byte after ${status%"$cr"}" >&2; exit 3; }',
  'printf \'STALLED {"status":"%s"}\\n\' "${status%"$cr"}"',
  'exec sleep 3600',
].join('\n');

/** Options of one run of the suite. */
export interface TunnelOptions {
  rounds: number;
  durationSeconds: number;
  warmupSeconds: number;
  connections: number;
  transferBytes: number;
  transferRounds: number;
  idleTunnels: number;
  wsSockets: number;
  wsSeconds: number;
  /** T5: size of the measured download. */
  fairnessBytes: number;
  /** T9: keys (each with a tunnel) deleted one by one. */
  revokedKeys: number;
  /** T7: tunnels, visitors per tunnel, seconds. */
  loadTunnels: number;
  loadVisitors: number;
  loadSeconds: number;
  only: ReadonlySet<string>;
}

const children: Child[] = [];
const tempDirs: string[] = [];

/** Kills everything this suite started (also on an error half-way). */
async function cleanUp(): Promise<void> {
  for (const child of children.splice(0)) await stop(child, 'SIGKILL');
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}
process.once('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

interface ServerUnderTest {
  child: Child;
  port: number;
  url: string;
  apiKey: string;
  /** The user's JWT (account API). */
  token: string;
}

/** `bun src/index.ts` on a fresh file database, pinned to the server core; default log level, stdout to /dev/null. */
async function startServer(): Promise<ServerUnderTest> {
  const dir = mkdtempSync(join(tmpdir(), 'expose-bench-tunnel-'));
  tempDirs.push(dir);
  const port = await freePort();
  const child = Bun.spawn(pinned(CORES.server, [BUN, SERVER_ENTRY, '--host', '127.0.0.1', '--port', String(port), '--db', join(dir, 'expose.db')]), {
    cwd: ROOT,
    env: { ...process.env, EXPOSE_TUNNEL_DOMAIN: DOMAIN, EXPOSE_RATE_LIMIT_AUTH: '0', EXPOSE_RATE_LIMIT_API: '0', EXPOSE_MAX_TUNNELS: '0', EXPOSE_MAX_API_KEYS: '1000' },
    stdout: 'ignore',
    stderr: 'ignore',
  });
  children.push(child);
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}`);
    try {
      if ((await fetch(`${url}/health`)).status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error('server never became healthy');
    await Bun.sleep(20);
  }
  const email = `bench-${crypto.randomUUID().slice(0, 8)}@example.com`;
  const registered = await fetch(`${url}/api/v1/auth/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email, password: 'correct-zebra-staple-91' }) });
  if (registered.status !== 201) throw new Error(`register: ${registered.status} ${await registered.text()}`);
  const { token } = (await registered.json()) as { token: string };
  const created = await fetch(`${url}/api/v1/api-keys`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ name: 'bench' }) });
  if (created.status !== 201) throw new Error(`create key: ${created.status} ${await created.text()}`);
  const { key } = (await created.json()) as { key: string };
  return { child, port, url, apiKey: key, token };
}

/** The origin in its own process (not pinned: the scheduler places it). */
async function startOrigin(): Promise<{ child: Child; port: number }> {
  const child = Bun.spawn([BUN, ORIGIN], { stdout: 'pipe', stderr: 'inherit' });
  children.push(child);
  const { port } = await readTaggedLine<{ port: number }>({ stdout: child.stdout as ReadableStream<Uint8Array> }, 'READY ');
  return { child, port };
}

/** The floor: bench/servers/bun-relay.ts, a one-process Bun relay to the origin, pinned to the server core. */
async function startRelay(originPort: number): Promise<{ child: Child; port: number }> {
  const child = Bun.spawn(pinned(CORES.server, [BUN, BUN_RELAY, String(originPort)]), { stdout: 'pipe', stderr: 'inherit' });
  children.push(child);
  const { port } = await readTaggedLine<{ port: number }>({ stdout: child.stdout as ReadableStream<Uint8Array> }, 'READY ');
  return { child, port };
}

/** One real `expose http` process, not pinned; resolves once it printed its `ready` event. Its stdout is drained for the whole run. */
async function startClient(server: ServerUnderTest, originPort: number): Promise<Child> {
  const child = Bun.spawn([BUN, CLIENT_ENTRY, 'http', String(originPort), '--subdomain', SUBDOMAIN, '--json'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: tmpdir(), EXPOSE_SERVER: server.url, EXPOSE_API_KEY: server.apiKey },
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'ignore',
  });
  children.push(child);
  await waitForReady(child.stdout as ReadableStream<Uint8Array>);
  return child;
}

/** Resolves at the client's `{"event":"ready",...}` line; keeps draining its stdout afterwards, so it never blocks on a full pipe. */
function waitForReady(stdout: ReadableStream<Uint8Array>, timeoutMs = 20_000): Promise<void> {
  return new Promise((resolve, reject) => {
    let buffered = '';
    let settled = false;
    const timer = setTimeout(() => {
      settled = true;
      reject(new Error(`expose client printed no ready event within ${timeoutMs} ms: ${buffered.slice(-1000)}`));
    }, timeoutMs);
    void (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of stdout as unknown as AsyncIterable<Uint8Array>) {
        if (settled) continue;
        buffered += decoder.decode(chunk, { stream: true });
        if (buffered.split('\n').some((line) => line.includes('"event":"ready"'))) {
          settled = true;
          clearTimeout(timer);
          resolve();
        }
      }
      if (!settled) reject(new Error(`expose client exited before ready: ${buffered.slice(-1000)}`));
    })();
  });
}

const cpuOf = (pids: number[]) => pids.map((pid) => cpuMs(pid));

interface Side {
  /** `relay` is the floor: the one-process Bun relay (bench/servers/bun-relay.ts); `localtunnel` the peer (T2). */
  name: 'direct' | 'tunnel' | 'relay' | 'localtunnel';
  url: string;
  headers?: Record<string, string>;
}

/** T1: wrk -c{connections} alternating direct and tunnel; rps medians, per-round ratio median, CPU µs/request of server, client and origin. */
async function measureRequests(sides: Side[], pids: { server: number; client: number; origin: number; relay: number; ltServer?: number; ltClient?: number }, options: TunnelOptions) {
  const spec = (side: Side, durationSeconds: number): LoadSpec => ({ url: side.url, headers: side.headers, connections: options.connections, durationSeconds });
  for (const side of sides) await runWrk(spec(side, options.warmupSeconds));
  const samples: Record<string, Array<{ rps: number; serverUs: number; clientUs: number; originUs: number; relayUs: number; ltServerUs: number; ltClientUs: number; errors: number; wrk: WrkResult }>> = { direct: [], tunnel: [], relay: [], localtunnel: [] };
  const measured = [pids.server, pids.client, pids.origin, pids.relay, pids.ltServer, pids.ltClient];
  const cpuNow = () => measured.map((pid) => (pid === undefined ? 0 : cpuMs(pid)));
  for (let r = 0; r < options.rounds; r++) {
    const order = r % 2 === 0 ? sides : [...sides].reverse();
    for (const side of order) {
      const before = cpuNow();
      const result = await runWrk(spec(side, options.durationSeconds));
      const after = cpuNow();
      const per = (i: number) => ((after[i]! - before[i]!) * 1000) / Math.max(1, result.requests);
      samples[side.name]!.push({ rps: result.requestsPerSecond, serverUs: per(0), clientUs: per(1), originUs: per(2), relayUs: per(3), ltServerUs: per(4), ltClientUs: per(5), errors: result.non2xx + result.socketErrors, wrk: result });
    }
  }
  const summary = (name: string) => {
    const runs = samples[name]!;
    if (runs.length === 0) return undefined;
    return {
      rps: round(median(runs.map((s) => s.rps)), 0),
      serverCpuUsPerRequest: round(median(runs.map((s) => s.serverUs)), 1),
      clientCpuUsPerRequest: round(median(runs.map((s) => s.clientUs)), 1),
      originCpuUsPerRequest: round(median(runs.map((s) => s.originUs)), 1),
      relayCpuUsPerRequest: round(median(runs.map((s) => s.relayUs)), 1),
      localtunnelServerCpuUsPerRequest: round(median(runs.map((s) => s.ltServerUs)), 1),
      localtunnelClientCpuUsPerRequest: round(median(runs.map((s) => s.ltClientUs)), 1),
      errors: runs.reduce((sum, s) => sum + s.errors, 0),
      rpsPerRound: runs.map((s) => round(s.rps, 0)),
    };
  };
  const ratioOf = (name: string) => (samples[name]!.length === 0 ? null : round(median(samples[name]!.map((s, i) => s.rps / samples.direct![i]!.rps)), 3));
  return {
    rounds: options.rounds,
    durationSeconds: options.durationSeconds,
    connections: options.connections,
    direct: summary('direct'),
    tunnel: summary('tunnel'),
    relay: summary('relay'),
    localtunnel: summary('localtunnel'),
    ratio: ratioOf('tunnel')!,
    relayRatio: ratioOf('relay'),
    localtunnelRatio: ratioOf('localtunnel'),
    /** T2: how many times localtunnel's rate ours is, per round, median. */
    exposeOverLocaltunnel: samples.localtunnel!.length === 0 ? null : round(median(samples.tunnel!.map((s, i) => s.rps / samples.localtunnel![i]!.rps)), 2),
  };
}

/** T3: wrk paced by a Lua `delay()` (2 connections), each side at the same target rate; latency percentiles from wrk --latency. */
async function measureLatency(sides: Side[], targetRps: number, options: TunnelOptions) {
  // wrk's delay() is whole milliseconds: enough connections for a gap of at least 4 ms each.
  const connections = Math.max(2, Math.ceil((targetRps * 4) / 1000));
  const delayMs = Math.max(1, Math.round((connections * 1000) / targetRps));
  const script = `function delay()\n  return ${delayMs}\nend\n`;
  const spec = (side: Side, durationSeconds: number): LoadSpec => ({ url: side.url, headers: side.headers, connections, durationSeconds, script });
  for (const side of sides) await runWrk(spec(side, 1));
  const samples: Record<string, WrkResult[]> = { direct: [], tunnel: [], relay: [] };
  for (let r = 0; r < options.rounds; r++) {
    const order = r % 2 === 0 ? sides : [...sides].reverse();
    for (const side of order) samples[side.name]!.push(await runWrk(spec(side, options.durationSeconds)));
  }
  const summary = (name: string) => ({
    rps: round(median(samples[name]!.map((s) => s.requestsPerSecond)), 0),
    p50Ms: round(median(samples[name]!.map((s) => s.latencyMs.p50)), 3),
    p99Ms: round(median(samples[name]!.map((s) => s.latencyMs.p99)), 3),
  });
  const added = (p: 'p50' | 'p99', name = 'tunnel') => round(median(samples[name]!.map((s, i) => s.latencyMs[p] - samples.direct![i]!.latencyMs[p])), 3);
  return {
    connections,
    delayMs,
    targetRps: round(targetRps, 0),
    direct: summary('direct'),
    tunnel: summary('tunnel'),
    addedP50Ms: added('p50'),
    addedP99Ms: added('p99'),
    relayAddedP50Ms: added('p50', 'relay'),
    relayAddedP99Ms: added('p99', 'relay'),
  };
}

/** Reads a response body to the end, counting bytes. */
async function drain(body: ReadableStream<Uint8Array> | null): Promise<number> {
  let bytes = 0;
  if (body) for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) bytes += chunk.byteLength;
  return bytes;
}

/** T4: one download and one upload of `transferBytes` through each side (fetch in this process), one uncounted of each first, then alternating rounds; MB/s. */
async function measureTransfer(sides: Side[], options: TunnelOptions) {
  const total = options.transferBytes;
  const chunk = new Uint8Array(1024 * 1024).fill(121);
  const download = async (side: Side) => {
    const started = performance.now();
    const res = await fetch(`${side.url}download?bytes=${total}`, { headers: side.headers });
    const bytes = await drain(res.body);
    if (res.status !== 200 || bytes !== total) throw new Error(`${side.name} download: ${res.status}, ${bytes} of ${total} bytes`);
    return (total / 1e6 / (performance.now() - started)) * 1000;
  };
  const upload = async (side: Side) => {
    const body = repeatedBody(chunk, total);
    const started = performance.now();
    const res = await fetch(`${side.url}upload`, { method: 'POST', headers: { ...side.headers, 'content-length': String(total) }, body, duplex: 'half' } as RequestInit);
    const text = await res.text();
    if (res.status !== 200 || Number(text) !== total) throw new Error(`${side.name} upload: ${res.status}, origin read ${text} of ${total} bytes`);
    return (total / 1e6 / (performance.now() - started)) * 1000;
  };
  // Warm-up, not counted: each side's first transfer pays for JIT and buffer growth the rounds after it do not.
  for (const side of sides) {
    await download(side);
    await upload(side);
  }
  const samples: Record<string, { down: number[]; up: number[] }> = { direct: { down: [], up: [] }, tunnel: { down: [], up: [] }, relay: { down: [], up: [] } };
  for (let r = 0; r < options.transferRounds; r++) {
    const order = r % 2 === 0 ? sides : [...sides].reverse();
    for (const side of order) {
      samples[side.name]!.down.push(await download(side));
      samples[side.name]!.up.push(await upload(side));
    }
  }
  const ratio = (k: 'down' | 'up', name = 'tunnel') => round(median(samples[name]![k].map((v, i) => v / samples.direct![k][i]!)), 3);
  const mbps = (name: string, k: 'down' | 'up') => round(median(samples[name]![k]), 1);
  const direction = (k: 'down' | 'up') => ({ directMBps: mbps('direct', k), tunnelMBps: mbps('tunnel', k), ratio: ratio(k), relayMBps: mbps('relay', k), relayRatio: ratio(k, 'relay') });
  return { bytes: total, rounds: options.transferRounds, download: direction('down'), upload: direction('up') };
}

/** T8: bench/servers/ws-load.ts on the load core, `wsSockets` sockets ping-ponging for `wsSeconds`, alternating. */
async function measureWebSockets(originPort: number, serverPort: number, relayPort: number, options: TunnelOptions) {
  const run = async (name: Side['name']) => {
    const load = [String(options.wsSockets), String(options.wsSeconds)];
    const argv =
      name === 'direct'
        ? [BUN, WS_LOAD, `ws://127.0.0.1:${originPort}/ws`, ...load]
        : name === 'relay'
          ? [BUN, WS_LOAD, `ws://127.0.0.1:${relayPort}/ws`, ...load]
          : [BUN, WS_LOAD, `ws://127.0.0.1:${serverPort}/ws`, ...load, `${SUBDOMAIN}.${DOMAIN}:${serverPort}`];
    const child = Bun.spawn(pinned(CORES.load, argv), { stdout: 'pipe', stderr: 'pipe' });
    children.push(child);
    const [out, err, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
    const line = out.split('\n').find((l) => l.startsWith('RESULT '));
    if (code !== 0 || !line) throw new Error(`ws-load ${name} exited ${code}: ${err.slice(-1000)}`);
    const { messages, seconds } = JSON.parse(line.slice(7)) as { messages: number; seconds: number };
    return messages / seconds;
  };
  const samples: Record<string, number[]> = { direct: [], tunnel: [], relay: [] };
  for (let r = 0; r < options.rounds; r++) {
    const names: Array<Side['name']> = ['direct', 'tunnel', 'relay'];
    for (const name of r % 2 === 0 ? names : names.reverse()) samples[name]!.push(await run(name));
  }
  const ratioOf = (name: string) => round(median(samples[name]!.map((v, i) => v / samples.direct![i]!)), 3);
  return {
    sockets: options.wsSockets,
    seconds: options.wsSeconds,
    directPerSecond: round(median(samples.direct!), 0),
    tunnelPerSecond: round(median(samples.tunnel!), 0),
    relayPerSecond: round(median(samples.relay!), 0),
    ratio: ratioOf('tunnel'),
    relayRatio: ratioOf('relay'),
  };
}

/**
 * T6: a fresh server; `n` control WebSockets opened from this process by bench/lib/mux-tunnel.ts
 * (Auth, RegisterTunnel, answering Heartbeats), 50 handshakes at a time; server RSS before and after,
 * each after 2 s of quiet.
 */
async function measureIdleTunnels(n: number) {
  const server = await startServer();
  const tunnels: MuxTunnel[] = [];
  try {
    // One tunnel first, opened and closed, so code paths that load lazily are counted in the baseline.
    (await openMuxTunnel(server.port, server.apiKey, 'idle-warm')).ws.close();
    await Bun.sleep(2000);
    const before = rssBytes(server.child.pid);
    tunnels.push(...(await openMuxTunnels(server.port, server.apiKey, n, 'idle-')));
    await Bun.sleep(2000);
    const after = rssBytes(server.child.pid);
    const live = (await fetch(`${server.url}/health`)).status === 200;
    return { tunnels: n, serverRssBeforeMiB: round(before / 2 ** 20, 1), serverRssAfterMiB: round(after / 2 ** 20, 1), kibPerTunnel: round((after - before) / n / 1024, 1), healthyAfter: live };
  } finally {
    // Tunnels of a batch that failed half-way are not in `tunnels`: killing the server closes them.
    for (const t of tunnels) t.ws.close();
    await stop(server.child, 'SIGKILL');
    children.splice(children.indexOf(server.child), 1);
  }
}

/**
 * T5: a `fairnessBytes` download through the tunnel (fetch in this process) alone, and while another
 * visitor on the same tunnel holds a 16 GiB download open and never reads (STALLER_SCRIPT: bash with a
 * /dev/tcp socket, then `sleep`; it must have seen a 200 and a first body byte, or the row throws),
 * alternating; server RSS sampled every 50 ms while the stalled visitor is on.
 */
async function measureFairness(server: ServerUnderTest, options: TunnelOptions) {
  const total = options.fairnessBytes;
  const host = `${SUBDOMAIN}.${DOMAIN}`;
  const download = async () => {
    const started = performance.now();
    const res = await fetch(`http://127.0.0.1:${server.port}/download?bytes=${total}`, { headers: { Host: host } });
    const bytes = await drain(res.body);
    if (res.status !== 200 || bytes !== total) throw new Error(`T5 download: ${res.status}, ${bytes} of ${total} bytes`);
    return (total / 1e6 / (performance.now() - started)) * 1000;
  };
  const samples: { alone: number[]; stalled: number[] } = { alone: [], stalled: [] };
  const rss: Array<{ beforeMiB: number; stalledIdleMiB: number; peakMiB: number; afterMiB: number }> = [];
  const aloneGrowth: number[] = [];
  await download(); // warm-up, not counted
  for (let r = 0; r < options.transferRounds; r++) {
    const order: Array<'alone' | 'stalled'> = r % 2 === 0 ? ['alone', 'stalled'] : ['stalled', 'alone'];
    for (const name of order) {
      if (name === 'alone') {
        const before = rssBytes(server.child.pid);
        let peak = before;
        const sampler = setInterval(() => (peak = Math.max(peak, rssBytes(server.child.pid))), 50);
        try {
          samples.alone.push(await download());
        } finally {
          clearInterval(sampler);
        }
        aloneGrowth.push(Math.max(peak, rssBytes(server.child.pid)) - before);
        continue;
      }
      const before = rssBytes(server.child.pid);
      const staller = Bun.spawn(['bash', '-c', STALLER_SCRIPT, 'staller', String(server.port), host, String(STALLED_DOWNLOAD_BYTES)], { stdout: 'pipe', stderr: 'inherit' });
      children.push(staller);
      // Without a 200 and a started body there is no stalled stream, and the round would measure nothing.
      let status: string;
      try {
        ({ status } = await readTaggedLine<{ status: string }>({ stdout: staller.stdout as ReadableStream<Uint8Array> }, 'STALLED ', STALLER_START_TIMEOUT_MS));
      } catch (error) {
        throw new Error(`T5: the stalled visitor never got a 200 with a body: ${(error as Error).message}`);
      }
      if (!/^HTTP\/1\.1 200 /.test(status)) throw new Error(`T5: the stalled visitor's download was answered ${JSON.stringify(status)}, not 200`);
      await Bun.sleep(STALL_FILL_MS);
      const stalledIdle = rssBytes(server.child.pid);
      let peak = stalledIdle;
      const sampler = setInterval(() => (peak = Math.max(peak, rssBytes(server.child.pid))), 50);
      try {
        samples.stalled.push(await download());
      } finally {
        clearInterval(sampler);
      }
      peak = Math.max(peak, rssBytes(server.child.pid));
      if (staller.exitCode !== null) throw new Error(`T5: the stalled visitor exited early (${staller.exitCode})`);
      await stop(staller, 'SIGKILL');
      children.splice(children.indexOf(staller), 1);
      await Bun.sleep(500);
      const mib = (b: number) => round(b / 2 ** 20, 1);
      rss.push({ beforeMiB: mib(before), stalledIdleMiB: mib(stalledIdle), peakMiB: mib(peak), afterMiB: mib(rssBytes(server.child.pid)) });
    }
  }
  return {
    bytes: total,
    rounds: options.transferRounds,
    aloneMBps: round(median(samples.alone), 1),
    stalledMBps: round(median(samples.stalled), 1),
    ratio: round(median(samples.stalled.map((v, i) => v / samples.alone[i]!)), 3),
    serverRssGrowthMiB: round(Math.max(...rss.map((x) => x.peakMiB - x.beforeMiB)), 1),
    serverRssGrowthAloneMiB: round(Math.max(...aloneGrowth) / 2 ** 20, 1),
    rss,
  };
}

/**
 * T9: `n` API keys of the bench user, each with its own tunnel from the in-bench client, 8 visitors
 * in this process fetching `GET /` from random live tunnels throughout; the keys are deleted one by
 * one, and for each the time from the DELETE's answer to that tunnel's close event is recorded.
 */
async function measureRevocation(server: ServerUnderTest, n: number) {
  const auth = { authorization: `Bearer ${server.token}` };
  const keys: Array<{ id: string; key: string }> = [];
  for (let i = 0; i < n; i++) {
    const res = await fetch(`${server.url}/api/v1/api-keys`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ name: `revoke-${i}` }) });
    if (res.status !== 201) throw new Error(`T9 create key ${i}: ${res.status} ${await res.text()}`);
    const created = (await res.json()) as { api_key: { id: string }; key: string };
    keys.push({ id: created.api_key.id, key: created.key });
  }
  const tunnels: MuxTunnel[] = await openMuxTunnels(server.port, keys.map((k) => k.key), n, 'rev-');
  const alive = new Set(tunnels.map((_, i) => i));
  let running = true;
  const answers = { ok: 0, other: 0, failed: 0 };
  const visitors = Array.from({ length: 8 }, async () => {
    while (running && alive.size > 0) {
      const live = [...alive];
      const i = live[Math.floor(Math.random() * live.length)]!;
      try {
        const res = await fetch(`http://127.0.0.1:${server.port}/`, { headers: { Host: `rev-${i}.${DOMAIN}` } });
        await res.arrayBuffer();
        if (res.status === 200) answers.ok++;
        else answers.other++;
      } catch {
        answers.failed++;
      }
    }
  });
  await Bun.sleep(1000);
  const okBefore = answers.ok;
  const latencies: number[] = [];
  const deleteMs: number[] = [];
  const goAway: number[] = [];
  const codes: Record<string, number> = {};
  let missed = 0;
  for (let i = 0; i < n; i++) {
    // A random pause first, so the DELETEs fall at random points of the server's revocation check
    // period instead of in step with it (waiting for each close would otherwise line them up).
    await Bun.sleep(Math.random() * 400);
    const sent = performance.now();
    const res = await fetch(`${server.url}/api/v1/api-keys/${keys[i]!.id}`, { method: 'DELETE', headers: auth });
    const answered = performance.now();
    await res.arrayBuffer();
    if (res.status !== 204) throw new Error(`T9 delete key ${i}: ${res.status}`);
    deleteMs.push(answered - sent);
    const closed = await Promise.race([tunnels[i]!.closed, Bun.sleep(5000).then(() => null)]);
    alive.delete(i);
    if (!closed) {
      missed++;
      continue;
    }
    latencies.push(closed.at - answered);
    if (tunnels[i]!.goAwayAt !== undefined) goAway.push(tunnels[i]!.goAwayAt! - answered);
    codes[closed.code] = (codes[closed.code] ?? 0) + 1;
  }
  running = false;
  await Promise.all(visitors);
  for (const t of tunnels) t.ws.close();
  // A close handled before the DELETE's own answer counts as 0 ms (both events arrive in this one process).
  const clamped = latencies.map((v) => Math.max(0, v));
  return {
    keys: n,
    closesSeen: latencies.length,
    missedWithin5s: missed,
    closeCodes: codes,
    closedBeforeAnswer: latencies.filter((v) => v < 0).length,
    p50Ms: round(percentile(clamped, 50), 2),
    p99Ms: round(percentile(clamped, 99), 2),
    maxMs: round(Math.max(...clamped), 2),
    deleteP50Ms: round(percentile(deleteMs, 50), 2),
    goAwaysSeen: goAway.length,
    goAwayP99Ms: round(percentile(goAway.map((v) => Math.max(0, v)), 99), 2),
    visitorAnswers: answers,
    visitorOkBeforeFirstDelete: okBefore,
  };
}

/**
 * T7: `loadTunnels` tunnels served by the in-bench client in its own process (bench/lib/mux-tunnel.ts,
 * unpinned), and wrk on the load core with one thread per tunnel and `loadVisitors` keep-alive
 * connections per thread, each thread's requests carrying its tunnel's Host.
 */
async function measureManyTunnels(server: ServerUnderTest, options: TunnelOptions) {
  const mux = Bun.spawn([BUN, MUX_TUNNEL, String(server.port), server.apiKey, String(options.loadTunnels), 'load-'], { cwd: ROOT, stdout: 'pipe', stderr: 'inherit' });
  children.push(mux);
  try {
    await readTaggedLine<{ tunnels: number }>({ stdout: mux.stdout as ReadableStream<Uint8Array> }, 'READY ');
    const script = [
      'local n = 0',
      'function setup(thread) thread:set("id", n); n = n + 1 end',
      `function init(args) req = wrk.format("GET", "/", { Host = "load-" .. id .. ".${DOMAIN}" }) end`,
      'function request() return req end',
      '',
    ].join('\n');
    const dir = mkdtempSync(join(tmpdir(), 'expose-bench-t7-'));
    tempDirs.push(dir);
    const file = join(dir, 'hosts.lua');
    await Bun.write(file, script);
    const connections = options.loadTunnels * options.loadVisitors;
    const argv = ['wrk', `-t${options.loadTunnels}`, `-c${connections}`, `-d${options.loadSeconds}s`, '--latency', '--timeout', '5s', '-s', file, `http://127.0.0.1:${server.port}/`];
    const before = cpuOf([server.child.pid, mux.pid]);
    const wrk = Bun.spawn(pinned(CORES.load, argv), { stdout: 'pipe', stderr: 'pipe' });
    children.push(wrk);
    const [report, errors, code] = await Promise.all([new Response(wrk.stdout).text(), new Response(wrk.stderr).text(), wrk.exited]);
    if (code !== 0) throw new Error(`wrk exited ${code}: ${errors}`);
    const after = cpuOf([server.child.pid, mux.pid]);
    const r = parseWrk(report);
    return {
      tunnels: options.loadTunnels,
      visitorsPerTunnel: options.loadVisitors,
      seconds: options.loadSeconds,
      answers: r.requests,
      rps: round(r.requestsPerSecond, 0),
      errors: r.non2xx + r.socketErrors,
      non2xx: r.non2xx,
      socketErrors: r.socketErrors,
      p50Ms: round(r.latencyMs.p50, 2),
      p99Ms: round(r.latencyMs.p99, 2),
      serverCpuUsPerRequest: round(((after[0]! - before[0]!) * 1000) / Math.max(1, r.requests), 1),
      muxCpuUsPerRequest: round(((after[1]! - before[1]!) * 1000) / Math.max(1, r.requests), 1),
    };
  } finally {
    await stop(mux, 'SIGKILL');
    children.splice(children.indexOf(mux), 1);
  }
}

/** Runs the selected tunnel benchmarks (`only` holds T1 to T9); T2 and T3 need T1's rounds and run them when asked alone. */
export async function measureTunnels(options: TunnelOptions, log: (text: string) => void) {
  const out: Record<string, unknown> = {};
  try {
    const origin = await startOrigin();
    const server = await startServer();
    const client = await startClient(server, origin.port);
    const relay = await startRelay(origin.port);
    await Bun.sleep(1000);
    out.clientIdleRssMiB = round(rssBytes(client.pid) / 2 ** 20, 1);
    const tunnelHost = `${SUBDOMAIN}.${DOMAIN}`;
    const sides: Side[] = [
      { name: 'direct', url: `http://127.0.0.1:${origin.port}/` },
      // `Host` capitalised: wrk adds its own Host unless one is spelt exactly so (two would be a 400).
      { name: 'tunnel', url: `http://127.0.0.1:${server.port}/`, headers: { Host: tunnelHost } },
    ];
    const check = await fetch(sides[1]!.url, { headers: sides[1]!.headers });
    if (check.status !== 200 || (await check.text()) !== 'Hello, world') throw new Error(`the tunnel answered ${check.status}`);
    const pids = { server: server.child.pid, client: client.pid, origin: origin.child.pid, relay: relay.child.pid };
    const relaySide: Side = { name: 'relay', url: `http://127.0.0.1:${relay.port}/` };
    if (options.only.has('T1') || options.only.has('T2') || options.only.has('T3')) {
      let lt: Localtunnel | undefined;
      if (options.only.has('T2')) {
        log('T2: starting localtunnel (server and client under Node) in front of the same origin...');
        lt = await startLocaltunnel({ originPort: origin.port });
      }
      const ltSide: Side[] = lt ? [{ name: 'localtunnel', url: `http://127.0.0.1:${lt.port}/`, headers: { Host: lt.host } }] : [];
      log(`T1${lt ? ', T2' : ''}: GET through the tunnel${lt ? ', through localtunnel' : ''} and through a one-process relay against direct, wrk -c${options.connections}...`);
      try {
        out.T1 = await measureRequests([...sides, relaySide, ...ltSide], { ...pids, ltServer: lt?.server.pid, ltClient: lt?.client.pid }, options);
      } finally {
        await lt?.stop();
      }
    }
    if (options.only.has('T3')) {
      const t1 = out.T1 as Awaited<ReturnType<typeof measureRequests>>;
      log('T3: added latency at 10% of the tunnel peak rate...');
      out.T3 = await measureLatency([...sides, relaySide], t1.tunnel!.rps * 0.1, options);
    }
    if (options.only.has('T4')) {
      log(`T4: ${options.transferBytes / 2 ** 20} MiB download and upload, tunnel against direct...`);
      out.T4 = await measureTransfer([...sides, relaySide], options);
    }
    if (options.only.has('T8')) {
      log(`T8: WebSocket echo, ${options.wsSockets} sockets, tunnel against direct...`);
      out.T8 = await measureWebSockets(origin.port, server.port, relay.port, options);
    }
    if (options.only.has('T5')) {
      log(`T5: ${options.fairnessBytes / 2 ** 20} MiB download alone and beside a visitor that never reads...`);
      out.T5 = await measureFairness(server, options);
    }
    if (options.only.has('T9')) {
      log(`T9: ${options.revokedKeys} keys with tunnels under traffic, deleted one by one...`);
      out.T9 = await measureRevocation(server, options.revokedKeys);
    }
    if (options.only.has('T7')) {
      log(`T7: ${options.loadTunnels} tunnels × ${options.loadVisitors} visitors for ${options.loadSeconds} s...`);
      out.T7 = await measureManyTunnels(server, options);
    }
    out.serverRssAfterLoadMiB = round(rssBytes(server.child.pid) / 2 ** 20, 1);
    out.clientRssAfterLoadMiB = round(rssBytes(client.pid) / 2 ** 20, 1);
    await cleanUp();
    if (options.only.has('T6')) {
      log(`T6: server RSS with ${options.idleTunnels} idle tunnels...`);
      out.T6 = await measureIdleTunnels(options.idleTunnels);
    }
  } finally {
    await cleanUp();
  }
  return out;
}
