/** The two line-oriented outputs: plain lines (a pipe, a log file) and `--json`, one object per line for scripts. */
import type { ClientState, ReadyInfo, Reporter, RequestLogEntry } from './events.ts';
import { clockTime, printable, requestLine } from './format.ts';

/** Where lines go: stdout in production, an array in tests. */
export type WriteLine = (line: string) => void;

/** Plain lines, one per state change, tunnel and request. */
export class PlainReporter implements Reporter {
  constructor(
    private readonly writeLine: WriteLine,
    private readonly now: () => number = Date.now,
  ) {}

  state(state: ClientState, detail?: string): void {
    // Error is the final one-line message on stderr; repeating it on stdout would say it twice.
    if (state === 'Error') return;
    this.writeLine(`${clockTime(this.now())}  ${state}${detail === undefined ? '' : `: ${printable(detail)}`}`);
  }

  ready(info: ReadyInfo): void {
    this.writeLine(`${clockTime(this.now())}  Forwarding ${printable(info.publicUrl)} -> ${info.localOrigin}`);
  }

  request(entry: RequestLogEntry): void {
    this.writeLine(requestLine(entry));
  }

  close(): void {}
}

/**
 * One JSON object per line: `{"event":"state","state":"Connected",...}`, `{"event":"ready",...}`,
 * `{"event":"request",...}`. Field names are snake_case, as on the wire; `time` is ISO 8601 UTC.
 */
export class JsonReporter implements Reporter {
  constructor(
    private readonly writeLine: WriteLine,
    private readonly now: () => number = Date.now,
  ) {}

  state(state: ClientState, detail?: string): void {
    this.emit({ event: 'state', state, ...(detail === undefined ? {} : { detail }) });
  }

  ready(info: ReadyInfo): void {
    this.emit({
      event: 'ready',
      public_url: info.publicUrl,
      subdomain: info.subdomain,
      tunnel_id: info.tunnelId ?? null,
      local_origin: info.localOrigin,
      flow_control: info.flowControl,
    });
  }

  request(entry: RequestLogEntry): void {
    this.emit({
      event: 'request',
      time: new Date(entry.startedAtMs).toISOString(),
      method: entry.method,
      path: entry.path,
      status: entry.status,
      duration_ms: entry.durationMs,
      ...(entry.websocket === true ? { websocket: true } : {}),
      ...(entry.error === undefined ? {} : { error: entry.error }),
    });
  }

  close(): void {}

  // JSON.stringify escapes control characters, so server text cannot reach the terminal raw.
  private emit(fields: Record<string, unknown>): void {
    const time = fields.time ?? new Date(this.now()).toISOString();
    this.writeLine(JSON.stringify({ ...fields, time }));
  }
}
