/** Starts the benchmark child (bench/servers/app-server.ts) pinned to the server core, on a fresh file database. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BenchServerInfo } from '../servers/app-server.ts';
import { BUN, CORES, pinned, readTaggedLine, stop, type Child } from './process.ts';

const APP_SERVER = join(import.meta.dir, '..', 'servers', 'app-server.ts');

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
    env: { ...process.env, EXPOSE_DB: join(dir, 'bench.db'), ...env },
    stdout: logFile === undefined ? 'ignore' : Bun.file(logFile),
    stderr: 'pipe',
  });
  const info = await readTaggedLine<BenchServerInfo>({ stdout: child.stderr as ReadableStream<Uint8Array> }, 'READY ');
  return {
    child,
    info,
    appUrl: `http://127.0.0.1:${info.appPort}`,
    helloUrl: `http://127.0.0.1:${info.helloPort}`,
    async close() {
      await stop(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
