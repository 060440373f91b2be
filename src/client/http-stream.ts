/**
 * One visitor's HTTP request, relayed to the local service: StreamOpen and DATA frames in, a local
 * fetch, StreamResponse and DATA frames out, within the flow-control windows when they are on.
 */
import {
  announcesWholeBody,
  FLAG_FIN,
  FrameKind,
  MAX_FRAME_PAYLOAD_BYTES,
  encodeFrame,
  type Frame,
  type StreamOpenData,
} from '../tunnel/protocol.ts';
import { pathWithoutQuery } from './events.ts';
import { GrantBatcher, SendWindow, creditGranted, isFlowControlled, takeCredit } from './flow-control.ts';
import { localRequestHeaders, responseHeaderPairs } from './headers.ts';
import { describeLocalError } from './local-error.ts';
import { RequestBody } from './request-body.ts';
import type { RelayStream, StreamContext } from './stream-context.ts';

/** Methods whose request fetch sends without a body (it throws on a body for them). */
const BODYLESS_METHODS = new Set(['GET', 'HEAD']);
/** Statuses whose response has no body, whatever the local service wrote (RFC 9110 §6.4.1). */
const BODYLESS_STATUSES = new Set([204, 205, 304]);
const EMPTY = new Uint8Array(0);

/** The log's note for a request the visitor (or the server) abandoned. */
const VISITOR_LEFT = 'visitor went away';

/** An HTTP request stream. Created on StreamOpen; forgotten once its response has ended or it failed. */
export class HttpStream implements RelayStream {
  private readonly abortController = new AbortController();
  private abortedPromise: Promise<void> | undefined;
  private readonly startedAtMs: number;
  private readonly sendWindow: SendWindow | undefined;
  private readonly receiveGrants: GrantBatcher | undefined;
  private body: RequestBody | undefined;
  private fetchStarted = false;
  private requestEnded = false;
  private finished = false;
  private status: number | null = null;

  constructor(
    private readonly ctx: StreamContext,
    private readonly open: StreamOpenData,
  ) {
    this.startedAtMs = ctx.now();
    const flow = ctx.flow;
    if (flow !== undefined) {
      // Both directions start with a full window when the stream opens.
      this.sendWindow = new SendWindow(flow.streamWindowBytes);
      this.receiveGrants = new GrantBatcher(flow.streamWindowBytes, (bytes) =>
        this.ctx.sender.control({ type: 'WindowUpdate', data: { stream_id: this.id, bytes } }),
      );
    }
  }

  /** Settles when the stream is abandoned; made only when a sender first has to wait for credit. */
  private get aborted(): Promise<void> {
    const signal = this.abortController.signal;
    this.abortedPromise ??= signal.aborted ? Promise.resolve() : new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
    return this.abortedPromise;
  }

  private get id(): number {
    return this.open.stream_id;
  }

  // fetch upper-cases these methods whatever their case (Fetch standard, "normalize a method").
  private get method(): string {
    return this.open.method.toUpperCase();
  }

  onFrame(frame: Frame): void {
    const payload = frame.payload;
    const fin = (frame.flags & FLAG_FIN) !== 0;
    if (frame.kind !== FrameKind.DATA || this.requestEnded) {
      // Nothing else belongs on an HTTP stream, and nothing after its FIN: dropped, yet still
      // returned to the connection window, which the server charged for it.
      if (isFlowControlled(frame.kind)) this.ctx.flow?.receiveGrants.consumed(payload.byteLength);
      return;
    }
    if (fin) this.requestEnded = true;
    if (BODYLESS_METHODS.has(this.method)) {
      this.consumed(payload.byteLength);
      if (!this.fetchStarted) this.startFetch(undefined);
    } else if (this.body !== undefined) {
      this.body.push(payload, fin);
    } else if (fin && payload.byteLength === 0) {
      // The first DATA decides: an empty FIN means no body at all, so the local service sees no
      // chunked empty body on a DELETE or an OPTIONS, exactly what the visitor sent.
      this.startFetch(undefined);
    } else if (payload.byteLength > 0 || fin) {
      this.body = new RequestBody((bytes) => this.consumed(bytes));
      this.body.push(payload, fin);
      this.startFetch(this.body.stream);
    }
  }

  onWindowUpdate(bytes: number): void {
    this.sendWindow?.grant(bytes);
  }

  onRemoteEnd(error: string | undefined): void {
    if (this.finished) return;
    this.log(error === undefined ? VISITOR_LEFT : error);
    this.finish(true);
  }

  abort(): void {
    if (this.finished) return;
    this.log('tunnel connection lost');
    this.finish(true);
  }

  // Bytes the local service took (or that were thrown away once it needed no more): granted back
  // to the stream while the server may still send on it, and always to the connection.
  private consumed(bytes: number): void {
    if (!this.requestEnded) this.receiveGrants?.consumed(bytes);
    this.ctx.flow?.receiveGrants.consumed(bytes);
  }

  private startFetch(body: ReadableStream<Uint8Array> | undefined): void {
    this.fetchStarted = true;
    void this.relay(body);
  }

  private async relay(body: ReadableStream<Uint8Array> | undefined): Promise<void> {
    let response: Response;
    try {
      const headers = localRequestHeaders(this.open.headers, this.ctx.target.host, this.ctx.hostHeader);
      // Concatenation, never new URL(path, base): a path of "//evil.example/" must stay on localhost.
      response = await this.ctx.fetch(`${this.ctx.target.origin}${this.open.path}`, {
        method: this.open.method,
        headers,
        body,
        duplex: 'half',
        redirect: 'manual',
        // The visitor gets the bytes as the local service sent them; compressed stays compressed.
        decompress: false,
        // No idle cut of ours: server-sent events and slow downloads last as long as they last.
        timeout: false,
        signal: this.abortController.signal,
      } as BunFetchRequestInit);
    } catch (error) {
      if (this.finished) return;
      return this.fail(describeLocalError(error));
    }
    if (this.finished) {
      void response.body?.cancel().catch(() => {});
      return;
    }
    const bodyless = this.method === 'HEAD' || BODYLESS_STATUSES.has(response.status) || response.body === null;
    if (bodyless) {
      void response.body?.cancel().catch(() => {});
      if (this.respond(response)) await this.endResponse();
      return;
    }
    if (announcesWholeBody(response.headers.get('content-length'))) {
      // Read whole first, then head and body go out back to back: the server can answer the visitor
      // in one piece, and the body needs one frame (its FIN included) instead of two.
      let whole: Uint8Array;
      try {
        whole = await response.bytes();
      } catch (error) {
        if (!this.finished) this.fail(describeLocalError(error));
        return;
      }
      if (this.finished || !this.respond(response)) return;
      if ((await this.sendBody(whole, true)) && !this.finished) this.completed();
      return;
    }
    if (this.respond(response)) await this.pumpBody(response.body!);
  }

  /** Sends the StreamResponse; false (after a 502 for the visitor) when it cannot be relayed. */
  private respond(response: Response): boolean {
    this.status = response.status;
    try {
      this.ctx.sender.control({ type: 'StreamResponse', data: { stream_id: this.id, status: response.status, headers: responseHeaderPairs(response.headers) } });
      return true;
    } catch (error) {
      // Our own encoder refused the message (over 64 KiB of headers, say): one 502, not a dead tunnel.
      void response.body?.cancel().catch(() => {});
      this.status = null;
      this.fail(`The local service's response headers cannot be relayed (${(error as Error).message})`);
      return false;
    }
  }

  private async pumpBody(body: ReadableStream<Uint8Array>): Promise<void> {
    const reader = body.getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (this.finished) return;
        if (done) break;
        if (!(await this.sendBody(value))) return;
      }
    } catch (error) {
      if (!this.finished) this.fail(describeLocalError(error));
      return;
    } finally {
      // Stops the local download when we quit early (visitor left, tunnel dropped).
      if (this.finished) void reader.cancel().catch(() => {});
    }
    await this.endResponse();
  }

  /**
   * Sends one chunk of the local response as DATA frames, the last one with FIN when `fin`; false
   * when the stream or connection ended meanwhile.
   */
  private async sendBody(chunk: Uint8Array, fin = false): Promise<boolean> {
    const flow = this.ctx.flow;
    let offset = 0;
    do {
      let pieceBytes = Math.min(MAX_FRAME_PAYLOAD_BYTES, chunk.byteLength - offset);
      if (pieceBytes > 0 && flow !== undefined && this.sendWindow !== undefined) {
        const credit = takeCredit(this.sendWindow, flow.sendWindow, pieceBytes);
        if (credit === 0) {
          // Out of credit: the local body stays unread (TCP pushes back on the local service)
          // until the server grants more.
          await Promise.race([creditGranted(this.sendWindow, flow.sendWindow), this.aborted]);
          if (this.finished) return false;
          continue;
        }
        pieceBytes = credit;
      }
      const last = offset + pieceBytes >= chunk.byteLength;
      const frame = encodeFrame(this.id, FrameKind.DATA, fin && last ? FLAG_FIN : 0, chunk.subarray(offset, offset + pieceBytes));
      if (!(await this.ctx.sender.data(frame)) || this.finished) return false;
      offset += pieceBytes;
    } while (offset < chunk.byteLength);
    return true;
  }

  // The FIN costs no window: only payload bytes count.
  private async endResponse(): Promise<void> {
    if ((await this.sendBody(EMPTY, true)) && !this.finished) this.completed();
  }

  /**
   * The local service has answered in full, so the stream is done even if the upload is not (a 413
   * sent early, say): the rest of it has nowhere to go. Later frames for this id are dropped and
   * returned to the connection window like any frame for a stream we no longer know.
   */
  private completed(): void {
    this.log(undefined);
    this.finish(false);
  }

  private fail(error: string): void {
    if (this.finished) return;
    try {
      this.ctx.sender.control({ type: 'StreamError', data: { stream_id: this.id, error } });
    } catch {
      // Cannot happen with our short texts; the stream is forgotten either way.
    }
    this.log(error, this.status ?? 502);
    this.finish(true);
  }

  private finish(early: boolean): void {
    if (this.finished) return;
    this.finished = true;
    if (early) this.abortController.abort();
    this.sendWindow?.close();
    const unread = this.body?.abandon(new Error('stream ended')) ?? 0;
    // Received but never read: still the connection's bytes, and the server counts them until granted.
    this.ctx.flow?.receiveGrants.consumed(unread);
    this.ctx.forget(this.id);
  }

  private log(error: string | undefined, status: number | null = this.status): void {
    this.ctx.logRequest({
      startedAtMs: this.startedAtMs,
      method: this.open.method,
      path: pathWithoutQuery(this.open.path),
      status,
      durationMs: Math.max(0, Math.round(this.ctx.now() - this.startedAtMs)),
      ...(error === undefined ? {} : { error }),
    });
  }
}
