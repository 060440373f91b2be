/** Text formatting shared by the plain and live displays: times, request lines, and text from the network made safe to print. */
import type { RequestLogEntry } from './events.ts';

/**
 * `text` with every control character (ESC included) replaced: a close reason or error message
 * from the server must not be able to move the cursor, recolour or rewrite the user's terminal.
 */
export function printable(text: string): string {
  return text.replace(/[\x00-\x1f\x7f-\x9f]/g, '?');
}

/** `HH:MM:SS` in local time. */
export function clockTime(ms: number): string {
  const date = new Date(ms);
  return [date.getHours(), date.getMinutes(), date.getSeconds()].map((n) => String(n).padStart(2, '0')).join(':');
}

/** The status column: the number, or `---` when the visitor left before any answer. */
export function statusText(status: number | null): string {
  return status === null ? '---' : String(status);
}

/**
 * One request as a log line: `12:00:01  GET     /path  200  12 ms  (error)`; a WebSocket's line
 * ends with `WebSocket` before the error. Method and path are protocol-checked ASCII.
 */
export function requestLine(entry: RequestLogEntry): string {
  const kind = entry.websocket === true ? '  WebSocket' : '';
  const error = entry.error === undefined ? '' : `  (${printable(entry.error)})`;
  return `${clockTime(entry.startedAtMs)}  ${entry.method.padEnd(7)} ${entry.path}  ${statusText(entry.status)}  ${entry.durationMs} ms${kind}${error}`;
}
