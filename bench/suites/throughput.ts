/**
 * P1, P2, P4: requests per second of a product route divided by the hello-world route of the same
 * process, measured side by side. Each round runs every target once, in a rotated order (so no target
 * always follows the same one), and the ratio of a round compares runs seconds apart; the reported
 * ratio is the median over rounds. CPU time per request of the server process is recorded too: it is
 * what the ratio estimates, and it holds still when a noisy neighbour steals the core.
 */
import { cpuMs } from '../lib/process.ts';
import type { BenchServer } from '../lib/bench-server.ts';
import { median, round } from '../lib/stats.ts';
import { runWrk, type LoadSpec } from '../lib/wrk.ts';

/** One load target: a URL with headers and the status every answer must have. */
export interface Target {
  name: string;
  url: string;
  headers?: Record<string, string>;
  /** 200 for the reads, 429 for the rate-limited answer. */
  expectStatus: number;
}

/** Per-target medians, and per-target ratios to `baseline` (medians of the per-round ratios). */
export interface ThroughputResult {
  rounds: number;
  durationSeconds: number;
  connections: number;
  targets: Record<string, { rps: number; cpuUsPerRequest: number; p50Ms: number; p99Ms: number; unexpected: number; requests: number }>;
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

/** Runs the rounds against `server`; `targets[0]` is the baseline every ratio divides by. */
export async function compareThroughput(server: BenchServer, targets: Target[], options: ThroughputOptions): Promise<ThroughputResult> {
  for (const target of targets) await checkStatus(target);
  const spec = (target: Target, durationSeconds: number): LoadSpec => ({
    url: target.url,
    headers: target.headers,
    connections: options.connections,
    durationSeconds,
  });
  for (const target of targets) await runWrk(spec(target, options.warmupSeconds));

  const samples = new Map<string, Array<{ rps: number; cpuUs: number; p50: number; p99: number; unexpected: number; requests: number }>>();
  for (const target of targets) samples.set(target.name, []);
  for (let round = 0; round < options.rounds; round++) {
    const order = targets.map((_, i) => targets[(i + round) % targets.length]!);
    for (const target of order) {
      const cpuBefore = cpuMs(server.child.pid);
      const result = await runWrk(spec(target, options.durationSeconds));
      const cpuUs = ((cpuMs(server.child.pid) - cpuBefore) * 1000) / Math.max(1, result.requests);
      // wrk counts non-2xx only; for a 429 target every answer but the odd refill is expected to be one.
      const unexpected = result.socketErrors + (target.expectStatus === 429 ? result.requests - result.non2xx : result.non2xx);
      samples.get(target.name)!.push({ rps: result.requestsPerSecond, cpuUs, p50: result.latencyMs.p50, p99: result.latencyMs.p99, unexpected, requests: result.requests });
    }
  }

  const baseline = samples.get(targets[0]!.name)!;
  const out: ThroughputResult = { rounds: options.rounds, durationSeconds: options.durationSeconds, connections: options.connections, targets: {}, ratios: {} };
  for (const target of targets) {
    const runs = samples.get(target.name)!;
    out.targets[target.name] = {
      rps: round(median(runs.map((r) => r.rps)), 0),
      cpuUsPerRequest: round(median(runs.map((r) => r.cpuUs)), 1),
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
