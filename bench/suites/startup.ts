/**
 * P5: the compiled binary against a compiled hello-world built here with the same options as
 * scripts/build.ts: time from spawn to the first 200 from /health, and resident memory once idle.
 * Beside them, the stack floor (bench/servers/stack-binary.ts): the libraries and the database any
 * server of this stack loads before answering from the product's data, none of the product's own work.
 * Starts rotate between the three; the first start of each is a discarded warm-up (the product's also
 * creates the database, so the measured starts are restarts on an existing database).
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CORES, freePort, pinned, rssBytes, stop, waitHealthy } from '../lib/process.ts';
import { median, round } from '../lib/stats.ts';

const MIB = 1024 * 1024;
const ROOT = join(import.meta.dir, '..', '..');
/** The product binary `bun run build` makes. */
export const PRODUCT_BINARY = join(ROOT, 'dist', 'expose-server');

/** What P5 reports. */
export interface StartupResult {
  starts: number;
  idleSettleMs: number;
  product: { firstHealthyMs: number; idleRssMiB: number; binaryMiB: number };
  hello: { firstHealthyMs: number; idleRssMiB: number; binaryMiB: number };
  stack: { firstHealthyMs: number; idleRssMiB: number; binaryMiB: number };
  /** `stack`: the stack floor's first healthy answer ÷ hello's, the part of P5b no product code adds. */
  ratios: { idleRss: number; firstHealthy: number; stackFirstHealthy: number };
}

/** Builds bench/servers/`name`.ts into `dir` with the product's compile options; returns its path. */
async function buildBinary(dir: string, name: string): Promise<string> {
  const outfile = join(dir, name);
  const result = await Bun.build({
    entrypoints: [join(import.meta.dir, '..', 'servers', `${name}.ts`)],
    compile: { outfile, autoloadDotenv: false, autoloadBunfig: false, autoloadTsconfig: false, autoloadPackageJson: false },
    minify: true,
    splitting: true,
    bytecode: true,
    format: 'esm',
    define: { 'process.env.NODE_ENV': JSON.stringify('production') },
  });
  if (!result.success) throw new Error(`${name} build failed: ${result.logs.join('\n')}`);
  return outfile;
}

async function startOnce(argv: string[], port: number, idleSettleMs: number): Promise<{ firstHealthyMs: number; idleRssBytes: number }> {
  const startedMs = performance.now();
  const child = Bun.spawn(pinned(CORES.server, argv), { stdout: 'ignore', stderr: 'ignore' });
  try {
    const firstHealthyMs = await waitHealthy(`http://127.0.0.1:${port}/health`, startedMs);
    await Bun.sleep(idleSettleMs);
    return { firstHealthyMs, idleRssBytes: rssBytes(child.pid) };
  } finally {
    await stop(child);
  }
}

/** Runs P5, or returns undefined when dist/expose-server has not been built. */
export async function measureStartup(starts: number, idleSettleMs: number): Promise<StartupResult | undefined> {
  if (!existsSync(PRODUCT_BINARY)) return undefined;
  const dir = mkdtempSync(join(tmpdir(), 'expose-bench-p5-'));
  try {
    const helloBinary = await buildBinary(dir, 'hello-binary');
    const stackBinary = await buildBinary(dir, 'stack-binary');
    const dbPath = join(dir, 'p5.db');
    const product = async () => {
      const port = await freePort();
      return startOnce([PRODUCT_BINARY, '--host', '127.0.0.1', '--port', String(port), '--db', dbPath], port, idleSettleMs);
    };
    const hello = async () => {
      const port = await freePort();
      return startOnce([helloBinary, '--port', String(port)], port, idleSettleMs);
    };
    const stack = async () => {
      const port = await freePort();
      return startOnce([stackBinary, '--port', String(port), '--db', dbPath], port, idleSettleMs);
    };
    await product();
    await hello();
    await stack();
    const p: Array<Awaited<ReturnType<typeof product>>> = [];
    const h: typeof p = [];
    const f: typeof p = [];
    const order = [() => product().then((r) => p.push(r)), () => hello().then((r) => h.push(r)), () => stack().then((r) => f.push(r))];
    for (let i = 0; i < starts; i++) {
      // Rotated each round, so none of the three always follows the same one.
      for (let j = 0; j < order.length; j++) await order[(i + j) % order.length]!();
    }
    const summary = (runs: typeof p, binary: string) => ({
      firstHealthyMs: round(median(runs.map((r) => r.firstHealthyMs)), 1),
      idleRssMiB: round(median(runs.map((r) => r.idleRssBytes)) / MIB, 1),
      binaryMiB: round(Bun.file(binary).size / MIB, 1),
    });
    return {
      starts,
      idleSettleMs,
      product: summary(p, PRODUCT_BINARY),
      hello: summary(h, helloBinary),
      stack: summary(f, stackBinary),
      ratios: {
        idleRss: round(median(p.map((r, i) => r.idleRssBytes / h[i]!.idleRssBytes)), 3),
        firstHealthy: round(median(p.map((r, i) => r.firstHealthyMs / h[i]!.firstHealthyMs)), 3),
        stackFirstHealthy: round(median(f.map((r, i) => r.firstHealthyMs / h[i]!.firstHealthyMs)), 3),
      },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
