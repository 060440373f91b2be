/**
 * A visitor's request body as the ReadableStream the local fetch reads, fed by DATA frames. Bytes
 * count as consumed (and are granted back to the server) only when fetch pulls them, so a local
 * service that reads slowly slows its own upload and nothing else.
 */

/** The request body of one stream: DATA payloads in, a pull-driven ReadableStream out. */
export class RequestBody {
  /** What the local fetch reads. */
  readonly stream: ReadableStream<Uint8Array>;
  private queue: Uint8Array[] = [];
  private queuedBytes = 0;
  private finished = false;
  private cancelled = false;
  private controller!: ReadableStreamDefaultController<Uint8Array>;
  private wakePull: (() => void) | undefined;

  /**
   * @param onConsumed called with the byte count of each chunk fetch takes, and of everything thrown
   *   away after fetch stopped reading (the upload must still drain, or the server would stall on
   *   this stream's window until the visitor gives up).
   */
  constructor(private readonly onConsumed: (bytes: number) => void) {
    this.stream = new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          this.controller = controller;
        },
        pull: () => this.pull(),
        cancel: () => this.cancel(),
      },
      // No read-ahead: the stream asks us for a chunk only when fetch wants one.
      { highWaterMark: 0 },
    );
  }

  /** Appends one DATA payload; `fin` ends the body. */
  push(payload: Uint8Array, fin: boolean): void {
    if (this.finished) return;
    if (this.cancelled) {
      this.onConsumed(payload.byteLength);
    } else if (payload.byteLength > 0) {
      this.queue.push(payload);
      this.queuedBytes += payload.byteLength;
    }
    if (fin) this.finished = true;
    this.wakePull?.();
  }

  /**
   * Ends the body early (the stream was abandoned): fetch sees an error if it is still reading.
   * Returns the bytes that were received but never read, for the caller to credit the connection.
   */
  abandon(reason: Error): number {
    const unread = this.queuedBytes;
    this.queue = [];
    this.queuedBytes = 0;
    if (!this.cancelled) {
      this.cancelled = true;
      try {
        this.controller.error(reason);
      } catch {
        // Already closed: fetch has read everything and nothing is reading any more.
      }
    }
    this.finished = true;
    this.wakePull?.();
    return unread;
  }

  private async pull(): Promise<void> {
    while (this.queue.length === 0 && !this.finished) {
      await new Promise<void>((resolve) => (this.wakePull = resolve));
      this.wakePull = undefined;
    }
    if (this.cancelled) return;
    const chunk = this.queue.shift();
    if (chunk !== undefined) {
      this.queuedBytes -= chunk.byteLength;
      this.controller.enqueue(chunk);
      this.onConsumed(chunk.byteLength);
    }
    if (this.queue.length === 0 && this.finished) this.controller.close();
  }

  // fetch stopped reading (the local service answered without taking the whole body): what is
  // queued and what still comes is thrown away, and counted as consumed so the upload drains
  // until the response ends the stream.
  private cancel(): void {
    this.cancelled = true;
    const unread = this.queuedBytes;
    this.queue = [];
    this.queuedBytes = 0;
    this.onConsumed(unread);
    this.wakePull?.();
  }
}
