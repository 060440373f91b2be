/**
 * A/B of the API hot path between git revisions: each revision's server (`bun src/index.ts serve`
 * from a worktree of its own, exactly as `bun run bench` starts the product) and the bare Elysia hello
 * run side by side, pinned to the server core, and wrk rotates over them round after round. What a
 * change to the hot path is worth is read from one such run, never from two runs minutes apart (on
 * a shared machine the same build moves by 10–20% between runs, and by ±1 µs between rounds).
 *
 *   bun bench/ab.ts [--mode key|jwt|429] [--rounds 7] [--seconds 3] <rev> [<rev> ...]
 *
 * A revision is anything git names (HEAD~1, a commit, a branch), or `.` for the working tree as it is.
 * Prints, per revision, the server CPU µs per request (user + system, /proc), its ratio to hello
 * (hello's µs ÷ its µs, the median of per-round ratios, as P1/P2/P4 report it) and req/s.
 */
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { startBaselineServer, startProductServer, type ProductServer } from './lib/bench-server.ts';
import { CORES } from './lib/process.ts';
import { ensureWrk } from './lib/wrk.ts';
import { compareThroughput, type Target } from './suites/throughput.ts';

const ROOT = resolve(import.meta.dir, '..');
const MODES = ['key', 'jwt', '429'] as const;
type Mode = (typeof MODES)[number];

const { values, positionals } = parseArgs({
  args: Bun.argv.slice(2),
  options: {
    mode: { type: 'string', default: 'key' },
    rounds: { type: 'string', default: '7' },
    seconds: { type: 'string', default: '3' },
  },
  strict: true,
  allowPositionals: true,
});
const mode = values.mode as Mode;
if (!MODES.includes(mode) || positionals.length === 0) {
  console.error('usage: bun bench/ab.ts [--mode key|jwt|429] [--rounds 7] [--seconds 3] <rev> [<rev> ...]   (. is the working tree)');
  process.exit(2);
}

function git(args: string[]): void {
  const result = Bun.spawnSync(['git', ...args], { cwd: ROOT, stdout: 'ignore', stderr: 'pipe' });
  if (result.exitCode !== 0) throw new Error(`git ${args.join(' ')}: ${result.stderr.toString().trim()}`);
}

/** Each revision's checkout: the working tree itself for `.`, else a detached worktree sharing node_modules. */
const scratch = mkdtempSync(join(tmpdir(), 'expose-ab-'));
const checkouts = positionals.map((rev, i) => {
  if (rev === '.') return { rev, root: ROOT, worktree: false };
  const root = join(scratch, String(i));
  git(['worktree', 'add', '--detach', '--force', root, rev]);
  symlinkSync(join(ROOT, 'node_modules'), join(root, 'node_modules'));
  return { rev, root, worktree: true };
});

// This process and wrk stay off the server's core.
if (CORES.pinned) Bun.spawnSync(['taskset', '-a', '-p', '-c', CORES.load, String(process.pid)], { stdout: 'ignore' });
ensureWrk();
const baseline = await startBaselineServer();
const servers: ProductServer[] = [];
try {
  const env = { EXPOSE_RATE_LIMIT_API: mode === '429' ? '1' : '0', EXPOSE_RATE_LIMIT_AUTH: '0' };
  const targets: Target[] = [{ name: 'hello', url: `${baseline.helloUrl}/hello`, pid: baseline.child.pid, expectStatus: 200 }];
  for (const [i, { rev, root }] of checkouts.entries()) {
    const server = await startProductServer(env, join(root, 'src', 'index.ts'));
    servers.push(server);
    targets.push({
      name: `${i + 1}: ${rev}`,
      url: `${server.url}/api/v1/users/me`,
      headers: { authorization: `Bearer ${mode === 'jwt' ? server.token : server.apiKey}` },
      pid: server.child.pid,
      expectStatus: mode === '429' ? 429 : 200,
    });
  }
  const rounds = Number(values.rounds);
  const durationSeconds = Number(values.seconds);
  console.error(`ab: ${mode}, ${targets.length} targets, ${rounds} rounds of ${durationSeconds} s each`);
  const result = await compareThroughput(targets, { rounds, durationSeconds, warmupSeconds: 2, connections: 32 });
  console.log(`| target | server CPU µs/req | ratio to hello | req/s | server busy | unexpected |`);
  console.log(`|---|---|---|---|---|---|`);
  for (const target of targets) {
    const r = result.targets[target.name]!;
    const ratio = result.ratios[target.name]?.cpu ?? 1;
    console.log(`| ${target.name} | ${r.cpuUsPerRequest} | ${ratio} | ${r.rps} | ${Math.round(r.serverCpuShare * 100)}% | ${r.unexpected} |`);
  }
} finally {
  for (const server of servers) await server.close();
  await baseline.close();
  for (const { root, worktree } of checkouts) if (worktree) git(['worktree', 'remove', '--force', root]);
  rmSync(scratch, { recursive: true, force: true });
}
