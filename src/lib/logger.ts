/** JSON-lines logger to stdout. Callers pass fields, never credentials or bodies. */
import { writeSync } from 'node:fs';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];

/** Structured logger: one JSON object per line. */
export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  /** Whether lines at `level` are written; lets a caller skip building fields nobody will read. */
  enabled(level: LogLevel): boolean;
}

const STDOUT_FD = 1;

/**
 * Lines for stdout wait here until the end of the current event-loop turn, then leave in one write.
 * Under load that is one syscall for many access-log lines instead of one per line. It is shared by
 * every stdout logger of the process, so lines keep the order in which they were logged.
 */
let pendingStdout = '';
let flushScheduled = false;
let exitHookInstalled = false;
let useStdoutStream = false;

/**
 * Writes every pending stdout line now. `fs.writeSync` rather than `process.stdout.write`: the first
 * use of the latter loads Node's stream machinery (~20 ms at start-up) and queues instead of writing.
 * Runs by itself at the end of each turn and at process exit; call it before an exit that skips the
 * 'exit' event.
 */
export function flushLogs(): void {
  flushScheduled = false;
  if (pendingStdout === '') return;
  const text = pendingStdout;
  pendingStdout = '';
  if (useStdoutStream) {
    process.stdout.write(text);
    return;
  }
  // What is still to be written once a write fell short; until then, all of `text`.
  let rest: Buffer | undefined;
  try {
    // The string goes straight to the kernel; a Buffer is made only in the rare case of a short write.
    const written = writeSync(STDOUT_FD, text);
    if (written !== Buffer.byteLength(text)) rest = Buffer.from(text).subarray(written);
    while (rest !== undefined && rest.length > 0) rest = rest.subarray(writeSync(STDOUT_FD, rest));
  } catch {
    // A non-blocking stdout that is full (EAGAIN from a slow pipe reader) or any other failure: from
    // now on go through the stream, which waits for the reader and reports errors as it always did.
    // For good, so that no later line overtakes what the stream still holds.
    useStdoutStream = true;
    process.stdout.write(rest ?? text);
  }
}

/**
 * The current time in ISO form, formatted at most once per millisecond: under load many lines share
 * one, and formatting a date is a visible share of writing a line.
 */
let isoMs = Number.NaN;
let isoText = '';
function isoNow(): string {
  const ms = Date.now();
  if (ms !== isoMs) {
    isoMs = ms;
    isoText = new Date(ms).toISOString();
  }
  return isoText;
}

function writeStdout(line: string): void {
  pendingStdout += line;
  if (flushScheduled) return;
  flushScheduled = true;
  setImmediate(flushLogs);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    // The last turn's lines (a fatal error, "stopped") must not be lost when the process ends.
    process.on('exit', flushLogs);
  }
}

/**
 * A logger that writes lines at or above `level` through `write`. By default they go to stdout,
 * batched per event-loop turn (see flushLogs); a custom `write` is called synchronously, line by line.
 */
export function createLogger(level: LogLevel, write: (line: string) => void = writeStdout): Logger {
  const threshold = LOG_LEVELS.indexOf(level);
  const emit = (lvl: LogLevel, msg: string, fields?: Record<string, unknown>) => {
    if (LOG_LEVELS.indexOf(lvl) < threshold) return;
    write(JSON.stringify({ time: isoNow(), level: lvl, msg, ...fields }) + '\n');
  };
  return {
    debug: (msg, fields) => emit('debug', msg, fields),
    info: (msg, fields) => emit('info', msg, fields),
    warn: (msg, fields) => emit('warn', msg, fields),
    error: (msg, fields) => emit('error', msg, fields),
    enabled: (lvl) => LOG_LEVELS.indexOf(lvl) >= threshold,
  };
}

/** A logger that keeps its lines in memory; for tests that assert what must not be logged. */
export function createMemoryLogger(level: LogLevel = 'debug'): Logger & { lines: string[] } {
  const lines: string[] = [];
  return Object.assign(createLogger(level, (line) => lines.push(line)), { lines });
}
