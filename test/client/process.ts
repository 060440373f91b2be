/** Running the real `expose` process in tests: a clean environment, its output line by line, and cleanup. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The repository root, the client's working directory in tests. */
export const ROOT = join(import.meta.dir, '..', '..');
/** The client's entry point, run with the same bun as the tests. */
export const ENTRY = join(ROOT, 'src', 'client', 'index.ts');

const tempDirs: string[] = [];
const children: Bun.Subprocess[] = [];

/** A fresh temporary directory, removed by cleanUp(). */
export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'expose-client-'));
  tempDirs.push(dir);
  return dir;
}

/** An environment with nothing of the caller's EXPOSE_* settings, a private HOME and config directory, no colours. */
export function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  const home = tempDir();
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, XDG_CONFIG_HOME: join(home, 'config'), NO_COLOR: '1', ...extra };
}

/** Runs the client to completion and collects its output. */
export async function runClient(args: string[], options: { env?: Record<string, string>; stdin?: string } = {}) {
  const child = Bun.spawn([process.execPath, ENTRY, ...args], {
    cwd: ROOT,
    env: options.env ?? cleanEnv(),
    stdin: options.stdin === undefined ? 'ignore' : new TextEncoder().encode(options.stdin),
    stdout: 'pipe',
    stderr: 'pipe',
  });
  const [stdout, stderr, exitCode] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  return { stdout, stderr, exitCode };
}

/** Starts the client in the background; cleanUp() kills it if the test did not end it. */
export function spawnClient(args: string[], env: Record<string, string>) {
  const child = Bun.spawn([process.execPath, ENTRY, ...args], { cwd: ROOT, env, stdin: 'ignore', stdout: 'pipe', stderr: 'pipe' });
  children.push(child);
  return child;
}

/** Kills leftover clients and removes temporary directories; for afterEach/afterAll. */
export function cleanUp(): void {
  for (const child of children.splice(0)) child.kill('SIGKILL');
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/** Reads a child's stdout line by line while it runs. */
export class Lines {
  private buffer = '';
  private readonly reader: { read(): Promise<{ value?: Uint8Array; done: boolean }> };
  private readonly decoder = new TextDecoder();
  readonly seen: string[] = [];

  constructor(stream: ReadableStream<Uint8Array>) {
    this.reader = stream.getReader();
  }

  /** The next line matching `test`; throws, quoting what it saw, when the output ends first. */
  async find(test: (line: string) => boolean): Promise<string> {
    for (;;) {
      const newline = this.buffer.indexOf('\n');
      if (newline !== -1) {
        const line = this.buffer.slice(0, newline);
        this.buffer = this.buffer.slice(newline + 1);
        this.seen.push(line);
        if (test(line)) return line;
        continue;
      }
      const { value, done } = await this.reader.read();
      if (done) throw new Error(`output ended without the line; saw:\n${this.seen.join('\n')}`);
      this.buffer += this.decoder.decode(value, { stream: true });
    }
  }

  /** The next `--json` event of kind `event`, parsed. */
  async event(event: string): Promise<Record<string, unknown>> {
    return JSON.parse(await this.find((line) => (JSON.parse(line) as { event: string }).event === event));
  }

  /** Every remaining line, once the output has ended. */
  async rest(): Promise<string[]> {
    for (;;) {
      const { value, done } = await this.reader.read();
      if (done) break;
      this.buffer += this.decoder.decode(value, { stream: true });
    }
    const lines = this.buffer.split('\n').filter((line) => line !== '');
    this.seen.push(...lines);
    this.buffer = '';
    return lines;
  }
}
