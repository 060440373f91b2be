/** Shared by the reliability tests: a real server child on a file database, and a seeded PRNG. */
import { freePort } from '../helpers/free-port.ts';
import { join } from 'node:path';

const ROOT = join(import.meta.dir, '..', '..');
const ENTRY = join(ROOT, 'src', 'index.ts');


/** A running `bun src/index.ts` child. */
export interface ServerChild {
  process: ReturnType<typeof Bun.spawn>;
  url: string;
}

/** Starts the server from source on `dbPath` and waits for its first healthy answer. */
export async function startServer(dbPath: string, env: Record<string, string> = {}, timeoutMs = 15_000): Promise<ServerChild> {
  const port = await freePort();
  const child = Bun.spawn([process.execPath, ENTRY, '--host', '127.0.0.1', '--port', String(port), '--db', dbPath], {
    env: { ...process.env, EXPOSE_LOG_LEVEL: 'error', ...env },
    stdout: 'ignore',
    stderr: 'pipe',
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}: ${await new Response(child.stderr as ReadableStream).text()}`);
    try {
      const res = await fetch(`${url}/health`);
      if (res.status === 200) return { process: child, url };
    } catch {
      // not listening yet
    }
    await Bun.sleep(10);
  }
  child.kill('SIGKILL');
  throw new Error(`server on ${url} never became healthy`);
}

/** Mulberry32: a tiny seeded PRNG, so a failing run can be replayed from its printed seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
