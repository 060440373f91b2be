/**
 * P3: login latency against its floor, one bun:sqlite lookup plus Bun.password.verify of the same
 * stored hash behind an Elysia route of the same process; and login throughput at concurrency 8 with
 * the server's peak memory, beside the same load on the floor route (which has no cap on concurrent
 * hashes, so it shows what the cap saves).
 */
import { writeFileSync } from 'node:fs';
import type { BenchServer } from '../lib/bench-server.ts';
import { peakRssBytes, rssBytes } from '../lib/process.ts';
import { median, round } from '../lib/stats.ts';
import { runWrk, type LoadSpec } from '../lib/wrk.ts';

const MIB = 1024 * 1024;

/** What P3 reports. */
export interface LoginResult {
  rounds: number;
  p50Ms: { login: number; baseline: number };
  ratio: number;
  concurrency8: {
    durationSeconds: number;
    login: { rps: number; peakRssMiB: number; errors: number };
    baseline: { rps: number; peakRssMiB: number; errors: number };
    idleRssMiB: number;
  };
}

/** Options for P3. */
export interface LoginOptions {
  rounds: number;
  durationSeconds: number;
  concurrentDurationSeconds: number;
}

// Linux: writing 5 to clear_refs resets the peak RSS (VmHWM) to the current RSS.
function resetPeakRss(pid: number): void {
  writeFileSync(`/proc/${pid}/clear_refs`, '5');
}

/** Runs P3 against a server whose auth rate limit is off (so every login reaches the hash). */
export async function measureLogin(server: BenchServer, options: LoginOptions): Promise<LoginResult> {
  const body = JSON.stringify({ email: server.info.email, password: server.info.password });
  const login = (connections: number, durationSeconds: number): LoadSpec => ({
    url: `${server.appUrl}/api/v1/auth/login`, method: 'POST', body, connections, durationSeconds, timeoutSeconds: 30,
  });
  const baseline = (connections: number, durationSeconds: number): LoadSpec => ({
    url: `${server.helloUrl}/login-baseline`, method: 'POST', body, connections, durationSeconds, timeoutSeconds: 30,
  });
  for (const spec of [login(1, 1), baseline(1, 1)]) {
    const warm = await runWrk(spec);
    if (warm.non2xx > 0 || warm.requests === 0) throw new Error(`login warm-up against ${spec.url} failed: ${JSON.stringify(warm)}`);
  }

  const loginP50: number[] = [];
  const baselineP50: number[] = [];
  const ratios: number[] = [];
  for (let r = 0; r < options.rounds; r++) {
    const pair = r % 2 === 0 ? [login, baseline] : [baseline, login];
    const [first, second] = [await runWrk(pair[0]!(1, options.durationSeconds)), await runWrk(pair[1]!(1, options.durationSeconds))];
    const [l, b] = pair[0] === login ? [first, second] : [second, first];
    loginP50.push(l.latencyMs.p50);
    baselineP50.push(b.latencyMs.p50);
    ratios.push(l.latencyMs.p50 / b.latencyMs.p50);
  }

  const pid = server.child.pid;
  const idleRssMiB = rssBytes(pid) / MIB;
  const loaded = async (spec: LoadSpec) => {
    resetPeakRss(pid);
    const result = await runWrk(spec);
    return { rps: round(result.requestsPerSecond, 1), peakRssMiB: round(peakRssBytes(pid) / MIB, 1), errors: result.non2xx + result.socketErrors };
  };
  const loginLoaded = await loaded(login(8, options.concurrentDurationSeconds));
  const baselineLoaded = await loaded(baseline(8, options.concurrentDurationSeconds));

  return {
    rounds: options.rounds,
    p50Ms: { login: round(median(loginP50), 2), baseline: round(median(baselineP50), 2) },
    ratio: round(median(ratios), 3),
    concurrency8: {
      durationSeconds: options.concurrentDurationSeconds,
      login: loginLoaded,
      baseline: baselineLoaded,
      idleRssMiB: round(idleRssMiB, 1),
    },
  };
}
