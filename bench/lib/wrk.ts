/**
 * The load generator: wrk (Debian's package; installed by `ensureWrk` when missing) in its own
 * process, pinned to another core than the server. One thread, a fixed connection count, keep-alive.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CORES, pinned } from './process.ts';

/** One wrk run, as parsed from its report. */
export interface WrkResult {
  requestsPerSecond: number;
  requests: number;
  /** Answers outside 2xx/3xx. */
  non2xx: number;
  /** Connect/read/write errors and timeouts. */
  socketErrors: number;
  latencyMs: { p50: number; p90: number; p99: number };
  /** CPU time (user + system) wrk itself used, in ms; set by runWrk, not by parseWrk. */
  cpuMs?: number;
}

/** What to send. */
export interface LoadSpec {
  url: string;
  connections: number;
  durationSeconds: number;
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  body?: string;
  /** Seconds after which wrk counts a request as timed out (default 2; raise it for slow logins). */
  timeoutSeconds?: number;
  /** A Lua script of wrk's own (e.g. a `delay()` for paced load); not combined with POST. */
  script?: string;
}

/** Installs wrk from Debian when it is not on PATH (root, as on CI and the dev machines). */
export function ensureWrk(): void {
  if (Bun.which('wrk')) return;
  process.stderr.write('bench: installing wrk (apt-get)...\n');
  for (const argv of [['apt-get', 'update', '-qq'], ['apt-get', 'install', '-y', '-qq', 'wrk']]) {
    const result = Bun.spawnSync(argv, { stdout: 'ignore', stderr: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    if (result.exitCode !== 0) throw new Error(`could not install wrk (${argv.join(' ')} exited ${result.exitCode})`);
  }
}

const scriptDir = mkdtempSync(join(tmpdir(), 'expose-bench-wrk-'));
let scriptCount = 0;

function luaString(text: string): string {
  return JSON.stringify(text); // JSON string escapes are valid Lua string escapes for this ASCII input
}

function toMs(value: string, unit: string): number {
  const n = Number(value);
  switch (unit) {
    case 'us':
      return n / 1000;
    case 'ms':
      return n;
    case 's':
      return n * 1000;
    case 'm':
      return n * 60_000;
    default:
      throw new Error(`unknown wrk latency unit ${unit}`);
  }
}

function percentileLine(report: string, p: number): number {
  const match = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(report);
  return match ? toMs(match[1]!, match[2]!) : Number.NaN;
}

/** Parses wrk's text report (with --latency). */
export function parseWrk(report: string): WrkResult {
  const rps = /^Requests\/sec:\s+([\d.]+)/m.exec(report);
  const total = /^\s+(\d+) requests in/m.exec(report);
  if (!rps || !total) throw new Error(`unreadable wrk report:\n${report}`);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(report);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(report);
  return {
    requestsPerSecond: Number(rps[1]),
    requests: Number(total[1]),
    non2xx: non2xx ? Number(non2xx[1]) : 0,
    socketErrors: socket ? socket.slice(1, 5).reduce((sum, n) => sum + Number(n), 0) : 0,
    latencyMs: { p50: percentileLine(report, 50), p90: percentileLine(report, 90), p99: percentileLine(report, 99) },
  };
}

/** Runs wrk once against `spec` on the load core and returns the parsed result. */
export async function runWrk(spec: LoadSpec): Promise<WrkResult> {
  const argv = ['wrk', '-t1', `-c${spec.connections}`, `-d${spec.durationSeconds}s`, '--latency', `--timeout`, `${spec.timeoutSeconds ?? 2}s`];
  for (const [name, value] of Object.entries(spec.headers ?? {})) argv.push('-H', `${name}: ${value}`);
  if (spec.method === 'POST') {
    const script = join(scriptDir, `post-${++scriptCount}.lua`);
    writeFileSync(script, `wrk.method = "POST"\nwrk.body = ${luaString(spec.body ?? '')}\nwrk.headers["Content-Type"] = "application/json"\n`);
    argv.push('-s', script);
  } else if (spec.script !== undefined) {
    const script = join(scriptDir, `script-${++scriptCount}.lua`);
    writeFileSync(script, spec.script);
    argv.push('-s', script);
  }
  argv.push(spec.url);
  const child = Bun.spawn(pinned(CORES.load, argv), { stdout: 'pipe', stderr: 'pipe' });
  const [report, errors, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  if (code !== 0) throw new Error(`wrk exited ${code}: ${errors}`);
  const usage = child.resourceUsage();
  return { ...parseWrk(report), cpuMs: usage === undefined ? undefined : Number(usage.cpuTime.total) / 1000 };
}
