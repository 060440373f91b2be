/**
 * Flow-control bookkeeping (the `flow_control` feature): how much we may still send on a stream or
 * the connection, and when to grant the server more of what it may send us.
 */
import { FrameKind, MAX_WINDOW_BYTES } from '../tunnel/protocol.ts';

/**
 * True for the frame kinds whose payload counts against the windows: DATA and WebSocket message
 * pieces. WS_CLOSE, WS_PING and WS_PONG carry at most 125 bytes and are not counted.
 */
export function isFlowControlled(kind: FrameKind): boolean {
  return kind === FrameKind.DATA || kind === FrameKind.WS_TEXT || kind === FrameKind.WS_BINARY;
}

/**
 * Credit for what we send: bytes of DATA payload the server has allowed and we have not used yet.
 * A sender that finds it empty awaits `whenGranted()`, which settles on the next grant (or on close).
 */
export class SendWindow {
  private creditBytes: number;
  private waiters: Array<() => void> = [];

  constructor(initialBytes: number) {
    this.creditBytes = initialBytes;
  }

  /** Bytes that may be sent now. */
  get available(): number {
    return this.creditBytes;
  }

  /** Uses `bytes` of credit; the caller checked `available` first. */
  take(bytes: number): void {
    this.creditBytes -= bytes;
  }

  /** Adds a WindowUpdate's grant and wakes every waiter (each re-checks what it may send). */
  grant(bytes: number): void {
    // As in HTTP/2, a window never exceeds 2^31 − 1; a peer that over-grants gains nothing by it.
    this.creditBytes = Math.min(MAX_WINDOW_BYTES, this.creditBytes + bytes);
    this.wake();
  }

  /** Settles on the next grant or on close. Call it only after finding `available` at 0, in the same tick. */
  whenGranted(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Wakes everyone for good: the stream or connection is gone. */
  close(): void {
    this.creditBytes = 0;
    this.wake();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const resolve of waiters) resolve();
  }
}

/**
 * Credit for the next piece of at most `wanted` bytes on a stream: the least of what the stream's and
 * the connection's windows allow, taken from both at once, before any await, so concurrent streams
 * never spend the same connection credit. 0: none now; await `creditGranted` and ask again.
 */
export function takeCredit(stream: SendWindow, connection: SendWindow, wanted: number): number {
  const bytes = Math.min(wanted, stream.available, connection.available);
  if (bytes <= 0) return 0;
  stream.take(bytes);
  connection.take(bytes);
  return bytes;
}

/** Settles when the window that ran out (the stream's first, else the connection's) is granted more. */
export function creditGranted(stream: SendWindow, connection: SendWindow): Promise<void> {
  return (stream.available <= 0 ? stream : connection).whenGranted();
}

/**
 * Grants for what we receive. Bytes are counted as they leave towards their destination (the local
 * service read them, or we threw them away), and granted back in batches of at least a quarter of
 * the window: one WindowUpdate per 256 KiB of a 1 MiB window instead of one per frame, while the
 * server still has three quarters of its window in hand and never stalls on our batching.
 */
export class GrantBatcher {
  private pendingBytes = 0;
  private readonly thresholdBytes: number;

  constructor(
    windowBytes: number,
    private readonly sendGrant: (bytes: number) => void,
  ) {
    this.thresholdBytes = Math.max(1, Math.floor(windowBytes / 4));
  }

  /** Counts `bytes` as consumed; sends a grant once a quarter of the window has built up. */
  consumed(bytes: number): void {
    if (bytes <= 0) return;
    this.pendingBytes += bytes;
    if (this.pendingBytes >= this.thresholdBytes) this.flush();
  }

  /** Grants whatever is pending now. */
  flush(): void {
    // A grant is at most 2^31 − 1 on the wire; only a server that overran its window gets us there.
    while (this.pendingBytes > 0) {
      const bytes = Math.min(this.pendingBytes, MAX_WINDOW_BYTES);
      this.pendingBytes -= bytes;
      this.sendGrant(bytes);
    }
  }
}
