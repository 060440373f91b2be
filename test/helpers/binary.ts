/**
 * Runs the compiled binary the way an operator would: built by `scripts/build.ts` from the current
 * sources (cached while they are unchanged), placed alone in an empty directory, started with a clean
 * environment on a port the kernel picks, and read through its JSON log lines.
 */
import { copyFileSync, existsSync, linkSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ROOT = join(import.meta.dir, '..', '..');
/** Everything the binary is built from; a change to any of it means a new build. */
const BUILD_INPUTS = ['src', 'drizzle', 'scripts/build.ts', 'package.json', 'package-lock.json', 'tsconfig.json'];
/** One cached binary per distinct set of inputs, where `npm ci` wipes it with the rest of node_modules. */
const BUILD_CACHE = join(ROOT, 'node_modules', '.cache', 'expose-server-test');
/** A cached build of other sources is removed once it is this old (a concurrent run may still use it). */
const STALE_BUILD_MS = 10 * 60_000;
/** Longest wait for the build; a cold `bun build --compile` takes a few seconds. */
const BUILD_TIMEOUT_MS = 120_000;
/** Longest wait for a started server to log that it listens. */
const START_TIMEOUT_MS = 15_000;
/** Longest wait for a stopped server to exit (the grace period is 10 s; tests never need it). */
const EXIT_TIMEOUT_MS = 15_000;

const tempDirs: string[] = [];

/** A fresh empty directory; removed by removeTempDirs(). */
export function tempDir(prefix = 'expose-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

/** Removes every directory tempDir() made so far; call it from each test file's afterAll. */
export function removeTempDirs(): void {
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/** SHA-256 over the build inputs' paths and bytes, and the Bun version that compiles them. */
function inputsHash(): string {
  const hasher = new Bun.CryptoHasher('sha256').update(Bun.version);
  for (const input of BUILD_INPUTS) {
    const path = join(ROOT, input);
    const files = statSync(path).isDirectory()
      ? readdirSync(path, { recursive: true, encoding: 'utf8' }).map((name) => join(input, name)).sort()
      : [input];
    for (const file of files) {
      if (statSync(join(ROOT, file)).isDirectory()) continue;
      hasher.update(`\0${file}\0`).update(readFileSync(join(ROOT, file)));
    }
  }
  return hasher.digest('hex').slice(0, 16);
}

function removeStaleBuilds(keep: string): void {
  if (!existsSync(BUILD_CACHE)) return;
  for (const name of readdirSync(BUILD_CACHE)) {
    const path = join(BUILD_CACHE, name);
    if (name !== keep && Date.now() - statSync(path).mtimeMs > STALE_BUILD_MS) rmSync(path, { recursive: true, force: true });
  }
}

let built: Promise<string> | undefined;

/**
 * A binary built by `scripts/build.ts` from the current sources: reused while they are unchanged,
 * otherwise built (a couple of seconds) into a private file and renamed into the cache, so concurrent
 * test runs never see a half-written binary.
 */
export function buildBinary(): Promise<string> {
  built ??= (async () => {
    const hash = inputsHash();
    const binary = join(BUILD_CACHE, hash, 'expose-server');
    if (existsSync(binary)) return binary;
    mkdirSync(join(BUILD_CACHE, hash), { recursive: true });
    // Both executables are built into a private folder, then moved in: the server last, since its
    // presence is what marks the cache entry complete.
    const partial = join(BUILD_CACHE, hash, `partial-${process.pid}`);
    const proc = Bun.spawn([process.execPath, join(ROOT, 'scripts', 'build.ts'), '--outdir', partial], {
      cwd: ROOT,
      stdout: 'pipe',
      stderr: 'pipe',
      timeout: BUILD_TIMEOUT_MS,
    });
    const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    if (code !== 0) {
      rmSync(partial, { recursive: true, force: true });
      throw new Error(`build failed (${code}):\n${stdout}\n${stderr}`);
    }
    renameSync(join(partial, 'expose'), join(BUILD_CACHE, hash, 'expose'));
    renameSync(join(partial, 'expose-server'), binary);
    rmSync(partial, { recursive: true, force: true });
    removeStaleBuilds(hash);
    return binary;
  })();
  return built;
}

/** Puts the binary alone into a new empty directory and returns its path there. */
export async function installBinary(): Promise<{ dir: string; binary: string }> {
  const source = await buildBinary();
  const dir = tempDir('expose-run-');
  const binary = join(dir, 'expose-server');
  // A hard link is the same file without copying 100 MB per test; a copy where linking is refused.
  try {
    linkSync(source, binary);
  } catch {
    copyFileSync(source, binary);
  }
  return { dir, binary };
}

/** Only what a process needs, so the runner's own EXPOSE_* variables cannot leak into a test. */
export function cleanEnv(env: Record<string, string> = {}): Record<string, string> {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: tmpdir(), ...env };
}

/** One parsed JSON log line. */
export type LogLine = Record<string, unknown> & { msg: string };

/** Result of a command that ran to completion. */
export interface CliResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Runs the binary to completion; `stdin` is written then closed (default: closed at once). */
export async function runBinary(binary: string, args: string[], opts: { cwd: string; env?: Record<string, string>; stdin?: string }): Promise<CliResult> {
  const proc = Bun.spawn([binary, ...args], {
    cwd: opts.cwd,
    env: cleanEnv(opts.env),
    stdin: opts.stdin === undefined ? 'ignore' : new Blob([opts.stdin]),
    stdout: 'pipe',
    stderr: 'pipe',
    timeout: EXIT_TIMEOUT_MS,
  });
  const [stdout, stderr, exitCode] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { exitCode, stdout, stderr };
}

/** A running server process and what it has logged so far. */
export class ServerProcess {
  readonly logs: LogLine[] = [];
  stderr = '';
  port = 0;
  private readonly waiters: Array<{ match: (line: LogLine) => boolean; resolve: (line: LogLine) => void }> = [];

  private constructor(readonly proc: Bun.Subprocess<'ignore', 'pipe', 'pipe'>) {}

  /** Origin of the server, e.g. `http://127.0.0.1:40123`. */
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /**
   * Starts the binary on 127.0.0.1 and a kernel-chosen port, and resolves once it logs `listening`.
   * @throws when it exits first, with whatever it wrote to stderr.
   */
  static async start(binary: string, opts: { cwd: string; env?: Record<string, string>; args?: string[] }): Promise<ServerProcess> {
    const proc = Bun.spawn([binary, '--host', '127.0.0.1', '--port', '0', ...(opts.args ?? [])], {
      cwd: opts.cwd,
      env: cleanEnv(opts.env),
      stdin: 'ignore',
      stdout: 'pipe',
      stderr: 'pipe',
    });
    const server = new ServerProcess(proc);
    void server.pump();
    const stderr = new Response(proc.stderr).text().then((text) => (server.stderr = text));
    const listening = server.waitForLog((line) => line.msg === 'listening', START_TIMEOUT_MS);
    const exited = proc.exited.then(async (code) => {
      throw new Error(`server exited with ${code} before listening: ${await stderr}`);
    });
    const line = await Promise.race([listening, exited]);
    server.port = Number(line.port);
    return server;
  }

  private async pump(): Promise<void> {
    const decoder = new TextDecoder();
    let pending = '';
    for await (const chunk of this.proc.stdout) {
      pending += decoder.decode(chunk, { stream: true });
      let newline: number;
      while ((newline = pending.indexOf('\n')) !== -1) {
        const text = pending.slice(0, newline);
        pending = pending.slice(newline + 1);
        let line: LogLine;
        try {
          line = JSON.parse(text) as LogLine;
        } catch {
          line = { msg: '(not JSON)', text };
        }
        this.logs.push(line);
        for (const waiter of [...this.waiters]) {
          if (waiter.match(line)) {
            this.waiters.splice(this.waiters.indexOf(waiter), 1);
            waiter.resolve(line);
          }
        }
      }
    }
  }

  /** Resolves with the first log line (already logged or to come) that matches, or fails after `timeoutMs`. */
  waitForLog(match: (line: LogLine) => boolean, timeoutMs = START_TIMEOUT_MS): Promise<LogLine> {
    const seen = this.logs.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no matching log line within ${timeoutMs} ms; got:\n${this.logs.map((l) => JSON.stringify(l)).join('\n')}`)), timeoutMs);
      this.waiters.push({ match, resolve: (line) => (clearTimeout(timer), resolve(line)) });
    });
  }

  /** Resolves once the request log has a line for `requestId` (it is written just after the answer). */
  waitForRequestLog(requestId: string): Promise<LogLine> {
    return this.waitForLog((line) => line.msg === 'request' && line.request_id === requestId);
  }

  /** `fetch` against the server. */
  fetch(path: string, init?: RequestInit): Promise<Response> {
    return fetch(`${this.url}${path}`, init);
  }

  /** Sends `signal` and resolves with the exit code. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number> {
    this.proc.kill(signal);
    let timer: Timer | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.proc.kill('SIGKILL');
        reject(new Error(`server did not exit within ${EXIT_TIMEOUT_MS} ms of ${signal}`));
      }, EXIT_TIMEOUT_MS);
    });
    try {
      return await Promise.race([this.proc.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Kills the process if a test left it running. */
  kill(): void {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGKILL');
  }
}

/** A password that passes every rule (not common, long enough). */
export const BINARY_TEST_PASSWORD = 'correct-zebra-staple-91';

/** JSON request helper: method, path, body, bearer credential. */
export function jsonRequest(method: string, body?: unknown, credential?: string, headers: Record<string, string> = {}): RequestInit {
  return {
    method,
    headers: {
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...(credential === undefined ? {} : { authorization: `Bearer ${credential}` }),
      ...headers,
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  };
}
