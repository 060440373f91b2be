/**
 * The terminal display: request lines scroll up, and one status line stays at the bottom, redrawn
 * in place (state, public URL, local target, request count). Plain ANSI, no dependency.
 */
import type { ClientState, ReadyInfo, Reporter, RequestLogEntry } from './events.ts';
import { clockTime, printable, requestLine } from './format.ts';

const CLEAR_LINE = '\r\x1b[2K';
const RESET = '\x1b[0m';
const STATE_COLOURS: Record<ClientState, string> = {
  Connecting: '\x1b[33m',
  Authenticating: '\x1b[33m',
  Registering: '\x1b[33m',
  Connected: '\x1b[32m',
  Reconnecting: '\x1b[33m',
  Disconnected: '\x1b[90m',
  Error: '\x1b[31m',
};

/** The terminal the display writes to: stdout in production. */
export interface Terminal {
  write(text: string): void;
  /** Width in columns, when known. */
  readonly columns?: number;
}

/** Live display for a TTY. Colours follow the NO_COLOR convention (https://no-color.org). */
export class LiveDisplay implements Reporter {
  private current: ClientState = 'Connecting';
  private detail = '';
  private tunnel: ReadyInfo | undefined;
  private requestCount = 0;

  constructor(
    private readonly terminal: Terminal,
    private readonly colour: boolean,
    private readonly now: () => number = Date.now,
  ) {}

  state(state: ClientState, detail?: string): void {
    this.current = state;
    this.detail = detail === undefined ? '' : printable(detail);
    // The path to Connected is shown on the status line only; losing it is worth a line in the log.
    if (state === 'Disconnected' || state === 'Reconnecting') this.log(`${clockTime(this.now())}  ${state}${this.detail ? `: ${this.detail}` : ''}`);
    else this.redraw();
  }

  ready(info: ReadyInfo): void {
    this.tunnel = info;
    this.log(`${clockTime(this.now())}  Forwarding ${this.paint('\x1b[1m', printable(info.publicUrl))} -> ${info.localOrigin}`);
  }

  request(entry: RequestLogEntry): void {
    this.requestCount++;
    const line = requestLine(entry);
    const failed = entry.error !== undefined || (entry.status ?? 0) >= 500;
    this.log(failed ? this.paint('\x1b[31m', line) : entry.status !== null && entry.status >= 400 ? this.paint('\x1b[33m', line) : line);
  }

  close(): void {
    this.terminal.write(`${CLEAR_LINE}${this.statusLine()}\n`);
  }

  /** A line into the scrolling log, above the status line. */
  private log(line: string): void {
    this.terminal.write(`${CLEAR_LINE}${this.fit(line)}\n${this.statusLine()}`);
  }

  private redraw(): void {
    this.terminal.write(`${CLEAR_LINE}${this.statusLine()}`);
  }

  private statusLine(): string {
    const where = this.current === 'Connected' && this.tunnel ? `${printable(this.tunnel.publicUrl)} -> ${this.tunnel.localOrigin}` : this.detail;
    const count = `${this.requestCount} request${this.requestCount === 1 ? '' : 's'}`;
    const parts = [this.paint(STATE_COLOURS[this.current], `● ${this.current}`), where, this.paint('\x1b[90m', count)];
    return this.fit(parts.filter((part) => part !== '').join('  '));
  }

  private paint(code: string, text: string): string {
    return this.colour ? `${code}${text}${RESET}` : text;
  }

  // A line wider than the terminal wraps, and the status line's \r would then redraw only its last
  // row. Cut by visible characters, skipping the colour codes, which take no column.
  private fit(line: string): string {
    const columns = this.terminal.columns;
    if (columns === undefined || columns < 10) return line;
    let visible = 0;
    let out = '';
    for (let i = 0; i < line.length; i++) {
      if (line[i] === '\x1b') {
        const end = line.indexOf('m', i);
        out += line.slice(i, end + 1);
        i = end;
        continue;
      }
      if (visible === columns - 1) return `${out}${this.colour ? RESET : ''}`;
      out += line[i];
      visible++;
    }
    return out;
  }
}
