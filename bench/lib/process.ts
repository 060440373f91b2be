/**
 * Child processes for benchmarks: free ports, CPU pinning with taskset, waiting for a first healthy
 * answer, and reading a process's memory and open descriptors from /proc (Linux only).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
export { freePort } from '../../test/helpers/free-port.ts';
import { cpus } from 'node:os';

/** The pinned Bun of this repository: benchmarks run on the runtime the product ships with. */
export const BUN = process.execPath;

const HAS_TASKSET = existsSync('/usr/bin/taskset') || existsSync('/bin/taskset');
// The machine's CPUs, not this process's affinity (navigator.hardwareConcurrency), which an inherited
// taskset may have narrowed to one: taskset can pin a child to any CPU of the machine.
export const CPU_COUNT = cpus().length;

/** CPU cores for the server under test and for the load generator: different ones when there are two or more. */
export const CORES = { server: '0', load: CPU_COUNT > 1 ? '1' : '0', pinned: HAS_TASKSET && CPU_COUNT > 1 } as const;

/** `argv` prefixed with taskset pinning to `core`, when pinning is possible. */
export function pinned(core: string, argv: string[]): string[] {
  return CORES.pinned ? ['taskset', '-c', core, ...argv] : argv;
}


/** Polls `url` until it answers 200; returns the milliseconds from `startedMs` (performance.now()) to that answer. */
export async function waitHealthy(url: string, startedMs: number, timeoutMs = 15_000): Promise<number> {
  while (performance.now() - startedMs < timeoutMs) {
    try {
      const res = await fetch(url);
      await res.arrayBuffer();
      if (res.status === 200) return performance.now() - startedMs;
    } catch {
      // Not listening yet: try again at once; the poll itself is the resolution of the measurement.
    }
    await Bun.sleep(1);
  }
  throw new Error(`${url} did not answer 200 within ${timeoutMs} ms`);
}

function statusField(pid: number, field: string): number {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
  if (!match) throw new Error(`no ${field} for pid ${pid}`);
  return Number(match[1]) * 1024;
}

/** Resident set size of `pid`, in bytes. */
export const rssBytes = (pid: number) => statusField(pid, 'VmRSS');
/** Peak resident set size of `pid` since it started, in bytes. */
export const peakRssBytes = (pid: number) => statusField(pid, 'VmHWM');
/** Open file descriptors of `pid`. */
export const openFds = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;

/** A spawned child; taskset execs its command, so the child's pid is the measured process. */
export type Child = ReturnType<typeof Bun.spawn>;

/**
 * Resolves with the first stdout line of `child` that starts with `prefix`, parsed as JSON. Keeps
 * draining stdout afterwards (kept in `tail` for error reports), so a chatty child never blocks on a full pipe.
 */
export function readTaggedLine<T>(child: { stdout: ReadableStream<Uint8Array> }, prefix: string, timeoutMs = 60_000): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    let buffered = '';
    const timer = setTimeout(() => {
      settled = true;
      reject(new Error(`child printed no ${prefix} line within ${timeoutMs} ms; output: ${buffered.slice(-2000)}`));
    }, timeoutMs);
    void (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of child.stdout as unknown as AsyncIterable<Uint8Array>) {
        if (settled) continue;
        buffered += decoder.decode(chunk, { stream: true });
        for (const line of buffered.split('\n')) {
          if (!line.startsWith(prefix)) continue;
          settled = true;
          clearTimeout(timer);
          resolve(JSON.parse(line.slice(prefix.length)) as T);
          break;
        }
      }
      if (!settled) {
        clearTimeout(timer);
        reject(new Error(`child exited without a ${prefix} line; output: ${buffered.slice(-2000)}`));
      }
    })();
  });
}

/** Kills `child` and waits for it, so no benchmark leaves a process behind. */
export async function stop(child: Child, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  await child.exited;
}

const CLOCK_TICKS_PER_SECOND = 100; // USER_HZ on Linux

/** CPU time (user + system) `pid` has used so far, in milliseconds. */
export function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may contain spaces) start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const userTicks = Number(fields[11]);
  const systemTicks = Number(fields[12]);
  return ((userTicks + systemTicks) * 1000) / CLOCK_TICKS_PER_SECOND;
}
