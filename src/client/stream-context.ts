/** What a relayed stream needs from its connection, and what the connection needs from a stream. */
import type { Frame } from '../tunnel/protocol.ts';
import type { RequestLogEntry } from './events.ts';
import type { GrantBatcher, SendWindow } from './flow-control.ts';
import type { HostHeaderMode } from './headers.ts';
import type { FrameSender } from './sender.ts';
import type { LocalTarget } from './target.ts';

/** The connection's side of flow control, present only when the server accepted `flow_control`. */
export interface ConnectionFlow {
  /** Window per stream and direction, from TunnelReady `window`. */
  streamWindowBytes: number;
  /** Our credit on the whole connection. */
  sendWindow: SendWindow;
  /** Grants of the whole connection (WindowUpdate with stream id 0). */
  receiveGrants: GrantBatcher;
}

/** The fetch the client uses for local requests (the global one; tests may hand in their own). */
export type LocalFetch = (url: string, init: BunFetchRequestInit) => Promise<Response>;

/** One connection's services, shared by its streams. */
export interface StreamContext {
  sender: FrameSender;
  flow: ConnectionFlow | undefined;
  target: LocalTarget;
  hostHeader: HostHeaderMode;
  fetch: LocalFetch;
  now(): number;
  /** A request is over: for the request log. */
  logRequest(entry: RequestLogEntry): void;
  /** The stream is finished; the connection forgets it (later frames for its id are dropped). */
  forget(streamId: number): void;
}

/** A stream as the connection sees it: an HTTP request (http-stream.ts) or a passed-through WebSocket (ws-stream.ts). */
export interface RelayStream {
  /** A binary frame for this stream. */
  onFrame(frame: Frame): void;
  /** WindowUpdate for this stream. */
  onWindowUpdate(bytes: number): void;
  /** StreamClose (`error` undefined) or StreamError from the server: stop and forget the stream. */
  onRemoteEnd(error: string | undefined): void;
  /** The connection is gone: stop at once, send nothing. */
  abort(): void;
}
