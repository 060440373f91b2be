/** What the client reports as it runs: its states, the tunnel once ready, one entry per request. */

/** The documented client states (exact names, as shown to users and in `--json` output). */
export type ClientState = 'Connecting' | 'Authenticating' | 'Registering' | 'Connected' | 'Reconnecting' | 'Disconnected' | 'Error';

/** The tunnel as TunnelReady described it. */
export interface ReadyInfo {
  subdomain: string;
  publicUrl: string;
  tunnelId: string | undefined;
  /** Where requests go, e.g. `http://localhost:3000`. */
  localOrigin: string;
  /** True when the server accepted the `flow_control` feature. */
  flowControl: boolean;
}

/** One relayed request, reported once it is over. */
export interface RequestLogEntry {
  /** When the request arrived, ms since the epoch. */
  startedAtMs: number;
  method: string;
  /** Path without the query: a query may hold tokens, and this line may end up in a file. */
  path: string;
  /** The status the visitor got: the local service's, or 502 when it failed before answering; null when the visitor left first. */
  status: number | null;
  durationMs: number;
  /** Why the request did not complete (local service refused, visitor went away); absent when it did. */
  error?: string;
  /** A passed-through WebSocket: status 101 once the local socket opened, the duration is its whole life. */
  websocket?: true;
}

/** Where the client's events go: the live terminal display, plain lines, or JSON lines. */
export interface Reporter {
  /** A state change; `detail` is a short human line (the server, the close reason, the next retry). */
  state(state: ClientState, detail?: string): void;
  /** The tunnel is registered (again, after a reconnect). */
  ready(info: ReadyInfo): void;
  /** One request is over. */
  request(entry: RequestLogEntry): void;
  /** Leaves the output tidy (final newline, cursor back); called once, last. */
  close(): void;
}

/** `path` without its query, as request log entries show it. */
export function pathWithoutQuery(path: string): string {
  const queryAt = path.indexOf('?');
  return queryAt === -1 ? path : path.slice(0, queryAt);
}
