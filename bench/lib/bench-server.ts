/**
 * The benchmark's server processes, each pinned to the server core on a fresh file database:
 * - startProductServer: the product exactly as deployed, `bun src/index.ts serve`, its log on a pipe
 *   that this process reads (as journald or a container runtime would). P1, P2, P4.
 * - startBaselineServer: bench/servers/app-server.ts in its `baselines` role, the bare hello and floors
 *   in a process of their own, also in production mode. P1, P2, P4.
 * - startBenchServer: bench/servers/app-server.ts in its default role, the product (through the same
 *   listener as `serve`) and the baselines in one process. P3 and the soak.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
// Types only: importing a value would run the server module in this process.
import type { BenchServerInfo } from '../servers/app-server.ts';
import { BUN, CORES, pinned, readTaggedLine, stop, type Child } from './process.ts';

const APP_SERVER = join(import.meta.dir, '..', 'servers', 'app-server.ts');
const ENTRY_POINT = join(import.meta.dir, '..', '..', 'src', 'index.ts');
const HOST = '127.0.0.1';
/** app-server.ts serves the baselines alone when BENCH_ROLE has this value. */
const BASELINES_ROLE = 'baselines';

/** A running benchmark child and what it printed. */
export interface BenchServer {
  child: Child;
  info: BenchServerInfo;
  appUrl: string;
  helloUrl: string;
  close(): Promise<void>;
}

/**
 * Starts a child with `env` settings on top of production defaults (the JWT secret generated, the
 * production password cost). Logs are written at the default level, as a real deployment pays for
 * them: to /dev/null, or to `logFile` (the soak keeps them, to explain any unexpected answer).
 */
export async function startBenchServer(env: Record<string, string>, extraBunArgs: string[] = [], logFile?: string): Promise<BenchServer> {
  const dir = mkdtempSync(join(tmpdir(), 'expose-bench-db-'));
  const child = Bun.spawn(pinned(CORES.server, [BUN, ...extraBunArgs, APP_SERVER]), {
    env: { ...process.env, EXPOSE_HOST: HOST, EXPOSE_PORT: '0', EXPOSE_DB: join(dir, 'bench.db'), ...env },
    stdout: logFile === undefined ? 'ignore' : Bun.file(logFile),
    stderr: 'pipe',
  });
  const close = async () => {
    await stop(child);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const info = await readTaggedLine<BenchServerInfo>({ stdout: child.stderr as ReadableStream<Uint8Array> }, 'READY ');
    return { child, info, appUrl: `http://${HOST}:${info.appPort}`, helloUrl: `http://${HOST}:${info.helloPort}`, close };
  } catch (error) {
    // No READY line (timeout or early exit): leave neither the child nor its database behind.
    await close();
    throw error;
  }
}

/** The baselines alone, in a production-mode process of their own (app-server.ts, `baselines` role). */
export interface BaselineServer {
  child: Child;
  helloUrl: string;
  /** The ceilings: the contract's per-request duties in a raw Bun.serve (`/raw-logged`, `/raw-429`). */
  rawUrl: string;
  close(): Promise<void>;
}

/** Reads `stream` to its end, keeping nothing. */
async function drain(stream: ReadableStream<Uint8Array>): Promise<void> {
  for await (const _chunk of stream as unknown as AsyncIterable<Uint8Array>) {
    // Read and dropped: what a log collector costs the writer is a pipe that is read.
  }
}

/** Starts the baselines' process on the server core. */
export async function startBaselineServer(): Promise<BaselineServer> {
  const child = Bun.spawn(pinned(CORES.server, [BUN, APP_SERVER]), {
    env: { ...process.env, BENCH_ROLE: BASELINES_ROLE },
    // A pipe read to the end, as the product's: the floor hello-logged writes the access log there.
    stdout: 'pipe',
    stderr: 'pipe',
  });
  void drain(child.stdout as ReadableStream<Uint8Array>);
  try {
    const info = await readTaggedLine<BenchServerInfo>({ stdout: child.stderr as ReadableStream<Uint8Array> }, 'READY ');
    return { child, helloUrl: `http://${HOST}:${info.helloPort}`, rawUrl: `http://${HOST}:${info.rawPort}`, close: () => stop(child) };
  } catch (error) {
    // No READY line within readTaggedLine's timeout: the child may still be running.
    await stop(child);
    throw error;
  }
}

/** The product as deployed, with an account, its JWT and an API key made through the API. */
export interface ProductServer {
  child: Child;
  url: string;
  token: string;
  apiKey: string;
  /** What the server wrote to its log so far (stdout): bytes and lines. */
  log: { bytes: number; lines: number };
  close(): Promise<void>;
}

const NEWLINE = 10;
/** Longest wait for the server's `listening` log line, in ms. */
const LISTENING_TIMEOUT_MS = 30_000;

/**
 * Reads `stream` to its end, counting bytes and lines into `log`; resolves `listening` with the port
 * of the server's `listening` line.
 */
function readLog(stream: ReadableStream<Uint8Array>, log: ProductServer['log'], onListening: (port: number) => void): void {
  let head = '';
  let found = false;
  const decoder = new TextDecoder();
  void (async () => {
    for await (const chunk of stream as unknown as AsyncIterable<Uint8Array>) {
      log.bytes += chunk.length;
      for (let i = chunk.indexOf(NEWLINE); i !== -1; i = chunk.indexOf(NEWLINE, i + 1)) log.lines++;
      if (found) continue;
      head += decoder.decode(chunk, { stream: true });
      for (const line of head.split('\n')) {
        if (!line.includes('"msg":"listening"')) continue;
        found = true;
        onListening((JSON.parse(line) as { port: number }).port);
        break;
      }
    }
  })();
}

/**
 * Starts `bun src/index.ts serve` (the entry point `npm start` runs) on the server core, on a fresh
 * file database, with `env` on top of the defaults; the listen address is 127.0.0.1 and a free port.
 * Its stdout is a pipe that this process reads to the end, as a log collector would: the server pays
 * for every line as it does in production (the default level, `info`, logs every request). Then an
 * account is registered and an API key created through the API, as a user would. `entryPoint` is
 * another checkout's src/index.ts for an A/B run (bench/ab.ts).
 */
export async function startProductServer(env: Record<string, string>, entryPoint = ENTRY_POINT): Promise<ProductServer> {
  const dir = mkdtempSync(join(tmpdir(), 'expose-bench-db-'));
  const child = Bun.spawn(pinned(CORES.server, [BUN, '--no-env-file', entryPoint, 'serve']), {
    env: { ...process.env, EXPOSE_HOST: HOST, EXPOSE_PORT: '0', EXPOSE_DB: join(dir, 'bench.db'), ...env },
    stdout: 'pipe',
    stderr: 'inherit',
  });
  const log = { bytes: 0, lines: 0 };
  const close = async () => {
    await stop(child);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`src/index.ts serve printed no "listening" line within ${LISTENING_TIMEOUT_MS / 1000} s`)), LISTENING_TIMEOUT_MS);
      readLog(child.stdout as ReadableStream<Uint8Array>, log, (p) => {
        clearTimeout(timer);
        resolve(p);
      });
      // After a resolve this rejection is a no-op; clearing the timer keeps an early exit from holding the event loop 30 s.
      void child.exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`src/index.ts serve exited ${code} before listening`));
      });
    });
    const url = `http://${HOST}:${port}`;
    const post = async (path: string, body: unknown, headers: Record<string, string> = {}) => {
      const res = await fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
      if (res.status !== 201) throw new Error(`POST ${path}: ${res.status} ${await res.text()}`);
      return res.json() as Promise<Record<string, unknown>>;
    };
    const { token } = (await post('/api/v1/auth/register', { email: 'bench@example.com', password: 'bench-password-not-common-42' })) as { token: string };
    const { key: apiKey } = (await post('/api/v1/api-keys', { name: 'bench key' }, { authorization: `Bearer ${token}` })) as { key: string };
    return { child, url, token, apiKey, log, close };
  } catch (error) {
    // No listening line, an early exit, or a failed sign-up: leave neither the child nor its database behind.
    await close();
    throw error;
  }
}
