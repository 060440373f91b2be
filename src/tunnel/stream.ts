/**
 * One visitor HTTP request relayed through a tunnel: the response head the client will send, and the
 * response body, either whole (when it came in one frame by the time the head is answered: most small
 * answers) or as a ReadableStream fed by the client's DATA frames. The visitor's reading paces the
 * stream: bytes are acknowledged (flow-control grants) only as the visitor's connection takes them.
 */

const EMPTY = new Uint8Array(0);

/** Status and headers from the client's StreamResponse. */
export interface ResponseHead {
  status: number;
  headers: [string, string][];
}

/** Why a stream ended without a normal response. */
export type StreamFailure = { kind: 'error'; error: string } | { kind: 'closed' };

/** What a stream reports back to its session. */
export interface StreamOwner {
  /** `bytes` of response body have left towards the visitor: grant them back to the client. */
  consumed(stream: HttpStream, bytes: number): void;
  /** `bytes` of response body were handed to the visitor (not called for a discarded body): count them. */
  delivered(stream: HttpStream, bytes: number): void;
  /** The visitor went away (cancelled the body or aborted the request). */
  visitorGone(stream: HttpStream): void;
  /** The stream is over, normally or not: forget it. Called once. */
  ended(stream: HttpStream): void;
}

/** The relay state of one HTTP stream. */
export class HttpStream {
  /** Request-body bytes the client may still receive before it must grant more (flow control). */
  sendCredit: number;
  /** Response-body bytes received but not yet granted back (flow control bookkeeping). */
  receivedUngranted = 0;
  /** Response-body bytes consumed by the visitor and not yet granted. */
  consumedUngranted = 0;
  /** The request body's FIN has been sent. */
  requestDone = false;
  /** Set once the stream is over, for whatever reason; later frames for it are dropped. */
  finished = false;
  /** Response-body bytes handed to the visitor. */
  bytesOut = 0;
  readonly head: Promise<ResponseHead>;
  /** Settles once the stream is over, normally or not. */
  readonly done: Promise<void>;
  private resolveDone!: () => void;

  private resolveHead!: (head: ResponseHead) => void;
  private rejectHead!: (failure: StreamFailure) => void;
  private headSettled = false;
  private readonly chunks: Uint8Array[] = [];
  private finReceived = false;
  private bodyless = false;
  private failure: StreamFailure | undefined;
  private wakeReader: (() => void) | undefined;
  private controller: ReadableStreamDefaultController<Uint8Array> | undefined;
  private stream: ReadableStream<Uint8Array> | undefined;

  constructor(
    readonly id: number,
    private readonly owner: StreamOwner,
    windowBytes: number,
  ) {
    this.sendCredit = windowBytes;
    this.done = new Promise<void>((resolve) => {
      this.resolveDone = resolve;
    });
    this.head = new Promise<ResponseHead>((resolve, reject) => {
      this.resolveHead = resolve;
      this.rejectHead = reject;
    });
    // Nobody may be waiting on the head when the stream fails (a visitor already gone): no unhandled rejection.
    this.head.catch(() => {});
  }

  /**
   * The response body as a stream, made on first use: an answer taken whole (`takeWhole`) never pays
   * for one.
   */
  get body(): ReadableStream<Uint8Array> {
    this.stream ??= new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          this.controller = controller;
        },
        pull: (controller) => this.pull(controller),
        cancel: () => this.owner.visitorGone(this),
      },
      // Nothing is read ahead of the visitor: what sits in `chunks` is what the client sent within its window.
      { highWaterMark: 0 },
    );
    return this.stream;
  }

  /**
   * The whole response body, if it came in at most one DATA frame (its FIN received) of at most
   * `maxBytes`, and nobody reads it as a stream: handed over in one piece, which ends the stream.
   * Undefined otherwise. One frame at most (64 KiB): a body handed over is no longer counted by any
   * window while it waits for a visitor who may never read it.
   */
  takeWhole(maxBytes: number): Uint8Array | undefined {
    if (!this.finReceived || this.finished || this.stream !== undefined || this.chunks.length > 1) return undefined;
    const whole = this.chunks[0] ?? EMPTY;
    if (whole.byteLength > maxBytes) return undefined;
    this.chunks.length = 0;
    if (whole.byteLength > 0) {
      this.bytesOut += whole.byteLength;
      this.owner.delivered(this, whole.byteLength);
    }
    // Ending the stream gives its bytes back to the connection window (the session's `ended`).
    this.end();
    return whole;
  }

  /** The client's StreamResponse. */
  respond(head: ResponseHead): void {
    if (this.headSettled) return;
    this.headSettled = true;
    this.resolveHead(head);
  }

  /**
   * The visitor's answer has no body (HEAD, 204, 304): the client's body frames are only awaited for
   * their FIN, and nothing will ever read `body`.
   */
  discardBody(): void {
    this.bodyless = true;
    this.chunks.length = 0;
    if (this.finReceived) this.end();
  }

  /** A piece of the response body from the client. */
  push(payload: Uint8Array, fin: boolean): void {
    if (this.finished || this.finReceived) return;
    if (payload.byteLength > 0 && !this.bodyless) this.chunks.push(payload);
    if (fin) this.finReceived = true;
    if (this.bodyless) {
      if (payload.byteLength > 0) this.owner.consumed(this, payload.byteLength);
      if (fin) this.end();
      return;
    }
    this.wake();
  }

  /** Ends the stream early: before the head, the visitor's answer fails with `failure`; after, the body is cut. */
  fail(failure: StreamFailure): void {
    if (this.finished) return;
    // Set before end(): the owner's `ended` tells a normal end from a failure by it.
    this.failure = failure;
    this.end();
    this.chunks.length = 0;
    if (!this.headSettled) {
      this.headSettled = true;
      this.rejectHead(failure);
    }
    try {
      this.controller?.error(new Error('tunnel stream ended early'));
    } catch {
      // The visitor's body was already closed or cancelled.
    }
    this.wake();
  }

  /** Whether the stream ended early (visitor gone, client error or close, connection lost). */
  get failed(): boolean {
    return this.failure !== undefined;
  }

  /** Whether the whole response body (its FIN included) has arrived from the client. */
  get bodyArrived(): boolean {
    return this.finReceived;
  }

  /** Whether the response body has been fully handed over. */
  get complete(): boolean {
    return this.finReceived && this.chunks.length === 0;
  }

  private wake(): void {
    const wake = this.wakeReader;
    this.wakeReader = undefined;
    wake?.();
  }

  private async pull(controller: ReadableStreamDefaultController<Uint8Array>): Promise<void> {
    while (this.chunks.length === 0 && !this.finReceived && this.failure === undefined) {
      await new Promise<void>((resolve) => {
        this.wakeReader = resolve;
      });
    }
    if (this.failure !== undefined) {
      // A stream made after it failed (fail() found no controller to error): the body is cut here.
      try {
        controller.error(new Error('tunnel stream ended early'));
      } catch {
        // fail() already errored it.
      }
      return;
    }
    const chunk = this.chunks.shift();
    if (chunk !== undefined) {
      controller.enqueue(chunk);
      this.bytesOut += chunk.byteLength;
      this.owner.delivered(this, chunk.byteLength);
      this.owner.consumed(this, chunk.byteLength);
    }
    if (this.complete) {
      controller.close();
      this.end();
    }
  }

  private end(): void {
    if (this.finished) return;
    this.finished = true;
    this.owner.ended(this);
    this.resolveDone();
  }
}
