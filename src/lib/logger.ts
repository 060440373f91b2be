/** JSON-lines logger to stdout. Callers pass fields, never credentials or bodies. */

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

/**
 * Lines for stdout wait here until the end of the current event-loop turn, then leave in one write.
 * Under load that is one syscall for many access-log lines instead of one per line. It is shared by
 * every stdout logger of the process, so lines keep the order in which they were logged.
 */
let pendingStdout = '';
let flushScheduled = false;
let exitHookInstalled = false;

/**
 * Writes every pending stdout line now, with `console.log`: Bun writes a lone string as it is, to fd 1,
 * synchronously and without loading any module. When the pipe is full (a slow reader, even one that
 * made the pipe non-blocking) it waits for the reader: no line is lost and none piles up in memory.
 * When the reader is gone (EPIPE) the lines are dropped and the server goes on. `fs.writeSync` threw in
 * both cases, and loading node:fs cost every start about a millisecond; `process.stdout.write` loads
 * Node's stream machinery (~20 ms at start-up) and queues without bound.
 * Runs by itself at the end of each turn and at process exit; call it before an exit that skips the
 * 'exit' event.
 */
export function flushLogs(): void {
  flushScheduled = false;
  if (pendingStdout === '') return;
  const text = pendingStdout;
  pendingStdout = '';
  // Every line ends with a newline; console.log writes the last one.
  console.log(text.slice(0, -1));
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
