/**
 * `bun run bench`: the performance proof. Ratios against baselines measured side by side in one run
 * (never pass/fail on absolute times), printed as a table and written to bench/results/latest.json.
 *   bun bench/run.ts [--quick] [--only P1,P2,P3,P4,P5,limiter]
 * Load comes from wrk (installed from Debian when missing) on another core than the server.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startBenchServer } from './lib/bench-server.ts';
import { CORES, CPU_COUNT } from './lib/process.ts';
import { ensureWrk } from './lib/wrk.ts';
import { measureLimiterMemory } from './suites/limiter-memory.ts';
import { measureLogin } from './suites/login.ts';
import { measureStartup } from './suites/startup.ts';
import { compareThroughput, type Target, type ThroughputResult } from './suites/throughput.ts';
import { formatTable, type Row } from './report.ts';

const { values } = parseArgs({
  args: Bun.argv.slice(2),
  options: { quick: { type: 'boolean', default: false }, only: { type: 'string' } },
  strict: true,
});
const quick = values.quick!;
const only = new Set((values.only ?? 'P1,P2,P3,P4,P5,limiter').split(',').map((s) => s.trim()));
const throughputOptions = quick
  ? { rounds: 3, durationSeconds: 2, connections: 32, warmupSeconds: 1 }
  : { rounds: 5, durationSeconds: 4, connections: 32, warmupSeconds: 2 };

// Keep this process (and the wrk it starts) off the server's core.
if (CORES.pinned) Bun.spawnSync(['taskset', '-a', '-p', '-c', CORES.load, String(process.pid)], { stdout: 'ignore' });
ensureWrk();
const startedMs = performance.now();
const results: Record<string, unknown> = {
  date: new Date().toISOString(),
  bun: Bun.version,
  cpus: CPU_COUNT,
  pinned: CORES.pinned ? { server: CORES.server, load: CORES.load } : false,
  quick,
};
const rows: Row[] = [];
const log = (text: string) => process.stderr.write(`bench: ${text}\n`);

/** A row comparing target `name` with hello; without `goal` it is a figure for context (a floor). */
function throughputRow(t: ThroughputResult, id: string, what: string, name: string, goal: number | undefined, note: string): Row {
  const target = t.targets[name]!;
  const hello = t.targets.hello!;
  const ratio = t.ratios[name]!;
  return {
    id,
    what,
    product: `${target.rps} req/s (${target.cpuUsPerRequest} µs CPU/req)`,
    baseline: `${hello.rps} req/s (${hello.cpuUsPerRequest} µs CPU/req)`,
    ratio: ratio.rps,
    goal: goal === undefined ? '' : `≥ ${goal.toFixed(2)}`,
    met: goal === undefined ? null : ratio.rps >= goal,
    note: `${note}; CPU-time ratio ${ratio.cpu}`,
  };
}

if (only.has('P1') || only.has('P2') || only.has('P3')) {
  // Rate limits off: P1/P2 measure the credential path, P3 must reach the hash on every login.
  const server = await startBenchServer({ EXPOSE_RATE_LIMIT_API: '0', EXPOSE_RATE_LIMIT_AUTH: '0' });
  try {
    if (only.has('P1') || only.has('P2')) {
      log('P1/P2: API key and JWT GET /api/v1/users/me against hello...');
      const targets: Target[] = [
        { name: 'hello', url: `${server.helloUrl}/hello`, expectStatus: 200 },
        { name: 'hello_headers', url: `${server.helloUrl}/hello-headers`, expectStatus: 200 },
        { name: 'api_key_me', url: `${server.appUrl}/api/v1/users/me`, headers: { authorization: `Bearer ${server.info.apiKey}` }, expectStatus: 200 },
        { name: 'jwt_me', url: `${server.appUrl}/api/v1/users/me`, headers: { authorization: `Bearer ${server.info.token}` }, expectStatus: 200 },
      ];
      const t = await compareThroughput(server, targets, throughputOptions);
      results.throughput = t;
      rows.push(throughputRow(t, 'floor', "hello with the product's answer headers ÷ hello (req/s)", 'hello_headers', undefined, 'the most any product answer can reach: security headers and a request id, nothing else'));
      rows.push(throughputRow(t, 'P1', 'API key GET /users/me ÷ hello (req/s)', 'api_key_me', 0.8, `unexpected answers ${t.targets.api_key_me!.unexpected}`));
      rows.push(throughputRow(t, 'P2', 'JWT GET /users/me ÷ hello (req/s)', 'jwt_me', 0.7, `unexpected answers ${t.targets.jwt_me!.unexpected}`));
    }
    if (only.has('P3')) {
      log('P3: login p50 against sqlite lookup + Bun.password.verify; concurrency 8 with peak memory...');
      const l = await measureLogin(server, quick ? { rounds: 3, durationSeconds: 3, concurrentDurationSeconds: 4 } : { rounds: 5, durationSeconds: 4, concurrentDurationSeconds: 8 });
      results.login = l;
      rows.push({
        id: 'P3',
        what: 'login p50 ÷ (sqlite lookup + Bun.password.verify) p50',
        product: `${l.p50Ms.login} ms`,
        baseline: `${l.p50Ms.baseline} ms`,
        ratio: l.ratio,
        goal: '≤ 1.10',
        met: l.ratio <= 1.1,
        note: `c=8: ${l.concurrency8.login.rps} logins/s, peak RSS ${l.concurrency8.login.peakRssMiB} MiB (uncapped floor: ${l.concurrency8.baseline.rps}/s, ${l.concurrency8.baseline.peakRssMiB} MiB; idle ${l.concurrency8.idleRssMiB} MiB)`,
      });
    }
  } finally {
    await server.close();
  }
}

if (only.has('P4')) {
  log('P4: 429 answer against hello...');
  // A bucket of 1 per minute: after the first request every answer is a 429 for the same account.
  const server = await startBenchServer({ EXPOSE_RATE_LIMIT_API: '1', EXPOSE_RATE_LIMIT_AUTH: '0' });
  try {
    const targets: Target[] = [
      { name: 'hello', url: `${server.helloUrl}/hello`, expectStatus: 200 },
      { name: 'hello_429', url: `${server.helloUrl}/hello-429`, expectStatus: 429 },
      { name: 'rate_limited', url: `${server.appUrl}/api/v1/users/me`, headers: { authorization: `Bearer ${server.info.apiKey}` }, expectStatus: 429 },
    ];
    const t = await compareThroughput(server, targets, throughputOptions);
    results.rateLimited = t;
    rows.push(throughputRow(t, 'floor 429', "hello answering the product's 429 (same headers, same envelope) ÷ hello (req/s)", 'hello_429', undefined, 'the most a 429 of the product can reach'));
    rows.push(throughputRow(t, 'P4', '429 (API key, bucket empty) ÷ hello (req/s)', 'rate_limited', 0.9, `non-429 answers ${t.targets.rate_limited!.unexpected} (refills)`));
  } finally {
    await server.close();
  }
}

if (only.has('P5')) {
  log('P5: dist/expose-server against a compiled hello-world...');
  const s = await measureStartup(quick ? 3 : 7, 1000);
  results.startup = s ?? 'skipped: dist/expose-server not built (bun run build)';
  if (s) {
    rows.push({
      id: 'P5a',
      what: 'idle RSS of the binary ÷ compiled hello',
      product: `${s.product.idleRssMiB} MiB`,
      baseline: `${s.hello.idleRssMiB} MiB`,
      ratio: s.ratios.idleRss,
      goal: '≤ 1.3',
      met: s.ratios.idleRss <= 1.3,
      note: `binary ${s.product.binaryMiB} MiB vs ${s.hello.binaryMiB} MiB`,
    });
    rows.push({
      id: 'P5b',
      what: 'spawn → first healthy answer ÷ compiled hello',
      product: `${s.product.firstHealthyMs} ms`,
      baseline: `${s.hello.firstHealthyMs} ms`,
      ratio: s.ratios.firstHealthy,
      goal: '≤ 1.5',
      met: s.ratios.firstHealthy <= 1.5,
      note: `median of ${s.starts} alternating restarts on an existing database`,
    });
  } else {
    log('P5 skipped: run `bun run build` first');
  }
}

if (only.has('limiter')) {
  log('limiter: memory after 1,000,000 distinct client addresses...');
  const m = await measureLimiterMemory();
  results.limiterMemory = m;
  for (const r of m) {
    rows.push({
      id: `RL-${r.scenario}`,
      what: `limiter after 1M distinct addresses (${r.scenario === 'instant' ? 'all at once' : '100k new/s'})`,
      product: `${r.retainedHeapMiB} MiB heap, ${r.buckets} buckets`,
      baseline: '',
      ratio: null,
      goal: 'bounded',
      met: r.buckets <= 100_000,
      note: `${r.bytesPerBucket} B/bucket, ${r.nsPerRequest} ns/request, RSS +${r.rssGrowthMiB} MiB, ${r.refusedByOverflow} refused by the shared overflow bucket`,
    });
  }
}

results.rows = rows;
results.elapsedSeconds = Math.round((performance.now() - startedMs) / 1000);
const outDir = join(import.meta.dir, 'results');
mkdirSync(outDir, { recursive: true });
writeFileSync(join(outDir, 'latest.json'), `${JSON.stringify(results, null, 2)}\n`);
process.stdout.write(`${formatTable(rows)}\n\nwritten to bench/results/latest.json in ${results.elapsedSeconds} s\n`);
