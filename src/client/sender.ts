/**
 * Everything the client writes to its WebSocket. Control messages go out at once; DATA frames wait
 * while the socket's own buffer is full, so a Heartbeat, a WindowUpdate or another stream's
 * StreamResponse never queues behind more than `highWaterBytes` of bulk data.
 */
import { encodeControl, type ClientToServerMessage } from '../tunnel/protocol.ts';

/** Default bytes the WebSocket may hold unsent before DATA frames wait (4 MiB). */
export const DEFAULT_SEND_HIGH_WATER_BYTES = 4 * 1024 * 1024;
/**
 * How often a waiting sender looks at `bufferedAmount` again, in milliseconds. Bun's client
 * WebSocket has no drain event, so waiting is polling; it only happens while the buffer is full.
 */
const DRAIN_POLL_MS = 2;

/** The part of a WebSocket the sender uses (Bun's client WebSocket in production). */
export interface SendSocket {
  readonly readyState: number;
  readonly bufferedAmount: number;
  send(data: string | Uint8Array): void;
}

/** Writes control messages and data frames to one connection's WebSocket. */
export class FrameSender {
  private waiters: Array<(open: boolean) => void> = [];
  private pollTimer: ReturnType<typeof setTimeout> | undefined;
  private closed = false;

  constructor(
    private readonly socket: SendSocket,
    private readonly highWaterBytes: number = DEFAULT_SEND_HIGH_WATER_BYTES,
  ) {}

  /**
   * Sends a control message now. Throws a RangeError (from encodeControl) for a message the server
   * would refuse, before anything is written; quietly does nothing once the connection is closed.
   */
  control(message: ClientToServerMessage): void {
    const text = encodeControl(message);
    if (this.isOpen()) this.socket.send(text);
  }

  /**
   * Sends one binary frame once the socket's buffer is below the high-water mark. Resolves false,
   * without sending, when the connection closed meanwhile. Frames of one stream keep their order as
   * long as the stream awaits each call before the next, which every caller does.
   */
  async data(frame: Uint8Array): Promise<boolean> {
    // Newcomers queue behind those already waiting, so a busy stream cannot starve the others.
    let behindOthers = this.waiters.length > 0;
    while (behindOthers || this.socket.bufferedAmount > this.highWaterBytes) {
      if (!(await this.writable())) return false;
      behindOthers = false;
    }
    if (!this.isOpen()) return false;
    this.socket.send(frame);
    return true;
  }

  /** Releases every waiting sender with false: the connection is over. */
  close(): void {
    this.closed = true;
    clearTimeout(this.pollTimer);
    this.pollTimer = undefined;
    this.release(false);
  }

  private isOpen(): boolean {
    return !this.closed && this.socket.readyState === WebSocket.OPEN;
  }

  private writable(): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    const ready = new Promise<boolean>((resolve) => this.waiters.push(resolve));
    this.poll();
    return ready;
  }

  private poll(): void {
    if (this.pollTimer !== undefined) return;
    this.pollTimer = setTimeout(() => {
      this.pollTimer = undefined;
      if (!this.isOpen()) return this.release(false);
      if (this.socket.bufferedAmount <= this.highWaterBytes) return this.release(true);
      this.poll();
    }, DRAIN_POLL_MS);
  }

  // FIFO: the first waiter sends first; the others re-check the buffer in data() and may wait again.
  private release(open: boolean): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const resolve of waiters) resolve(open);
  }
}
