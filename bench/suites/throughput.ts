/**
 * P1, P2, P4: the server CPU time per request of a product route against a hello-world route, measured
 * side by side. Each target names the process serving it (the product and the baselines run in
 * separate processes), whose CPU time (user + system, /proc/<pid>/stat) over a wrk run, divided by the
 * requests wrk completed, is the figure. Each round runs every target once, in a rotated order (so no
 * target always follows the same one); the ratio of a round compares runs seconds apart, and the
 * reported ratio is the median over rounds.
 *
 * The CPU-time ratio is the headline; requests per second are recorded beside it. The two agree only
 * while the server process is saturated (its CPU time ≈ wall time, `serverCpuShare` near 1): then
 * req/s is 1 ÷ CPU per request. When it is not (the load generator sets the pace, or another tenant of
 * the machine takes the server's core) req/s measures the load generator and the scheduler, and the
 * req/s ratio of a cheap route against an expensive one says little about either. CPU time per request
 * is what an answer costs the process, and it moves far less than req/s when a neighbour steals the
 * core (it still moves: the neighbour also takes the caches).
 */
import { cpuMs } from '../lib/process.ts';
import { median, round } from '../lib/stats.ts';
import { runWrk, type LoadSpec } from '../lib/wrk.ts';

/** One load target: a URL with headers, the status every answer must have, and the process that answers. */
export interface Target {
  name: string;
  url: string;
  headers?: Record<string, string>;
  /** 200 for the reads, 429 for the rate-limited answer. */
  expectStatus: number;
  /** The server process whose CPU time the answers cost. */
  pid: number;
}

/** Per-target medians over the rounds. */
export interface TargetResult {
  rps: number;
  cpuUsPerRequest: number;
  /** The server process's CPU time ÷ wall time during a run: near 1 means the server set the pace. */
  serverCpuShare: number;
  /** wrk's own CPU time per request (on the load core). */
  wrkCpuUsPerRequest: number | null;
  p50Ms: number;
  p99Ms: number;
  unexpected: number;
  requests: number;
}

/** Per-target medians, and per-target ratios to `baseline` (medians of the per-round ratios). */
export interface ThroughputResult {
  rounds: number;
  durationSeconds: number;
  connections: number;
  targets: Record<string, TargetResult>;
  /** `cpu`: baseline CPU µs per request ÷ the target's (the headline); `rps`: the target's req/s ÷ the baseline's. */
  ratios: Record<string, { rps: number; cpu: number }>;
}

/** Options for one comparison. */
export interface ThroughputOptions {
  rounds: number;
  durationSeconds: number;
  connections: number;
  warmupSeconds: number;
}

async function checkStatus(target: Target): Promise<void> {
  const res = await fetch(target.url, { headers: target.headers });
  await res.arrayBuffer();
  // A 429 target answers 200 until its bucket is empty; one request drains a bucket of 1.
  if (res.status !== target.expectStatus && !(target.expectStatus === 429 && res.status === 200)) {
    throw new Error(`${target.name}: expected ${target.expectStatus}, got ${res.status} from ${target.url}`);
  }
}

interface Sample {
  rps: number;
  cpuUs: number;
  serverShare: number;
  wrkUs: number | null;
  p50: number;
  p99: number;
  unexpected: number;
  requests: number;
}

/** Runs the rounds; `targets[0]` is the baseline every ratio divides by. */
export async function compareThroughput(targets: Target[], options: ThroughputOptions): Promise<ThroughputResult> {
  for (const target of targets) await checkStatus(target);
  const spec = (target: Target, durationSeconds: number): LoadSpec => ({
    url: target.url,
    headers: target.headers,
    connections: options.connections,
    durationSeconds,
  });
  for (const target of targets) await runWrk(spec(target, options.warmupSeconds));

  const samples = new Map<string, Sample[]>();
  for (const target of targets) samples.set(target.name, []);
  for (let round = 0; round < options.rounds; round++) {
    const order = targets.map((_, i) => targets[(i + round) % targets.length]!);
    for (const target of order) {
      const cpuBefore = cpuMs(target.pid);
      const startedMs = performance.now();
      const result = await runWrk(spec(target, options.durationSeconds));
      const serverMs = cpuMs(target.pid) - cpuBefore;
      const wallMs = performance.now() - startedMs;
      const requests = Math.max(1, result.requests);
      // wrk counts non-2xx only; for a 429 target every answer but the odd refill is expected to be one.
      const unexpected = result.socketErrors + (target.expectStatus === 429 ? result.requests - result.non2xx : result.non2xx);
      samples.get(target.name)!.push({
        rps: result.requestsPerSecond,
        cpuUs: (serverMs * 1000) / requests,
        serverShare: serverMs / wallMs,
        wrkUs: result.cpuMs === undefined ? null : (result.cpuMs * 1000) / requests,
        p50: result.latencyMs.p50,
        p99: result.latencyMs.p99,
        unexpected,
        requests: result.requests,
      });
    }
  }

  const baseline = samples.get(targets[0]!.name)!;
  const out: ThroughputResult = { rounds: options.rounds, durationSeconds: options.durationSeconds, connections: options.connections, targets: {}, ratios: {} };
  for (const target of targets) {
    const runs = samples.get(target.name)!;
    const wrkUs = runs.flatMap((r) => (r.wrkUs === null ? [] : [r.wrkUs]));
    out.targets[target.name] = {
      rps: round(median(runs.map((r) => r.rps)), 0),
      cpuUsPerRequest: round(median(runs.map((r) => r.cpuUs)), 1),
      serverCpuShare: round(median(runs.map((r) => r.serverShare)), 2),
      wrkCpuUsPerRequest: wrkUs.length === 0 ? null : round(median(wrkUs), 1),
      p50Ms: round(median(runs.map((r) => r.p50)), 3),
      p99Ms: round(median(runs.map((r) => r.p99)), 3),
      unexpected: runs.reduce((sum, r) => sum + r.unexpected, 0),
      requests: runs.reduce((sum, r) => sum + r.requests, 0),
    };
    if (target === targets[0]) continue;
    out.ratios[target.name] = {
      rps: round(median(runs.map((r, i) => r.rps / baseline[i]!.rps)), 3),
      cpu: round(median(runs.map((r, i) => baseline[i]!.cpuUs / r.cpuUs)), 3),
    };
  }
  return out;
}
