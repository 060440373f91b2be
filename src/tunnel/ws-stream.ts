/**
 * One visitor WebSocket passed through a tunnel: the visitor's socket on this server, paired with the
 * client's socket to the local service, messages relayed both ways as WS_TEXT/WS_BINARY pieces of at
 * most 64 KiB, ping/pong and close codes relayed, and both directions paced by flow control.
 */
import type { ServerWebSocket } from 'bun';
import { decodeWsClose, encodeWsClose, FLAG_FIN, FrameKind } from './protocol.ts';
import type { StreamFailure } from './stream.ts';

/** What a visitor's socket carries in Bun's `ws.data`. */
export interface VisitorSocketData {
  kind: 'visitor';
  stream: WsStream;
}

/**
 * Largest message relayed either way (32 MiB); a bigger one closes the visitor's socket with 1009. A
 * message is relayed whole, so this is also what one passed-through socket may hold in memory.
 */
export const MAX_WS_MESSAGE_BYTES = 32 * 1024 * 1024;
/** Bytes Bun may hold unsent to the visitor before we stop granting the client more (the visitor is slow). */
const VISITOR_HIGH_WATER_BYTES = 1024 * 1024;
/** Close codes the relay uses itself. */
const GOING_AWAY = 1001;
const MESSAGE_TOO_BIG = 1009;
const INTERNAL_ERROR = 1011;
/** No status (1005) and abnormal closure (1006) are observed, never sent. */
const NO_STATUS = 1005;
const ABNORMAL = 1006;

type MessageKind = typeof FrameKind.WS_TEXT | typeof FrameKind.WS_BINARY;

/** What a WebSocket stream asks of its session. */
export interface WsStreamOwner {
  /** Sends payload in ≤64 KiB frames of `kind` within the flow-control window; false once the stream or connection ended. */
  writeFrames(stream: WsStream, kind: MessageKind, payload: Uint8Array, fin: boolean): Promise<boolean>;
  /** Sends one WS_CLOSE, WS_PING or WS_PONG frame (no window: they carry at most 125 bytes). */
  sendSmall(stream: WsStream, kind: typeof FrameKind.WS_CLOSE | typeof FrameKind.WS_PING | typeof FrameKind.WS_PONG, payload: Uint8Array): void;
  /** Payload bytes from the client have been dealt with: grant them back. */
  consumed(stream: WsStream, bytes: number): void;
  /** Payload bytes went to the visitor (bytes_out) or came from them (bytes_in). */
  counted(direction: 'in' | 'out', bytes: number): void;
  /** Tells the client to drop the stream at once (StreamClose). */
  abandoned(stream: WsStream): void;
  ended(stream: WsStream): void;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The relay state of one passed-through WebSocket. */
export class WsStream {
  /** Payload bytes the client may still receive before it must grant more. */
  sendCredit: number;
  finished = false;
  /** Resolves with the subprotocol the local server chose ('' for none) once the client accepted. */
  readonly accepted: Promise<string>;
  private resolveAccepted!: (protocol: string) => void;
  private rejectAccepted!: (failure: StreamFailure) => void;
  private settled = false;
  private visitor: ServerWebSocket<VisitorSocketData> | undefined;
  /** Whole messages from the client that arrived before the visitor's socket opened. */
  private early: { kind: MessageKind; bytes: Uint8Array }[] = [];
  private assembling: { kind: MessageKind; pieces: Uint8Array[]; bytes: number } | undefined;
  /** Client payload bytes not yet granted because the visitor is not reading. */
  private deferredGrant = 0;
  /** Visitor → client writes, chained so messages keep their order. */
  private outbound: Promise<unknown> = Promise.resolve();
  private outboundBytes = 0;
  private visitorClosed = false;
  private clientClosed = false;

  constructor(
    readonly id: number,
    private readonly owner: WsStreamOwner,
    private readonly windowBytes: number,
  ) {
    this.sendCredit = windowBytes;
    this.accepted = new Promise<string>((resolve, reject) => {
      this.resolveAccepted = resolve;
      this.rejectAccepted = reject;
    });
    this.accepted.catch(() => {});
  }

  /** WsUpgradeAccepted from the client. */
  accept(protocol: string | undefined): void {
    if (this.settled || this.finished) return;
    this.settled = true;
    this.resolveAccepted(protocol ?? '');
  }

  /** The stream ends abnormally: before acceptance the visitor gets `failure`, after it their socket closes. */
  fail(failure: StreamFailure, code = INTERNAL_ERROR, reason = 'tunnel stream ended'): void {
    if (this.finished) return;
    if (!this.settled) {
      this.settled = true;
      this.rejectAccepted(failure);
    }
    this.closeVisitor(code, reason);
    this.end();
  }

  /** The tunnel is ending (revocation, client drop, shutdown): the visitor is told 1001. */
  goingAway(): void {
    this.fail({ kind: 'closed' }, GOING_AWAY, 'tunnel closed');
  }

  // ───────── the visitor's socket (Bun's websocket handlers) ─────────

  /** The visitor's upgrade completed. */
  open(ws: ServerWebSocket<VisitorSocketData>): void {
    this.visitor = ws;
    if (this.finished) {
      ws.close(GOING_AWAY, 'tunnel closed');
      return;
    }
    for (const message of this.early.splice(0)) this.deliver(message.kind, message.bytes);
    if (this.clientClosed) this.closeVisitor(GOING_AWAY, '');
  }

  /** A message from the visitor: to the client, in order, within the window. */
  message(ws: ServerWebSocket<VisitorSocketData>, data: string | Buffer): void {
    if (this.finished) return;
    const kind: MessageKind = typeof data === 'string' ? FrameKind.WS_TEXT : FrameKind.WS_BINARY;
    const bytes = typeof data === 'string' ? encoder.encode(data) : new Uint8Array(data);
    this.owner.counted('in', bytes.byteLength);
    this.outboundBytes += bytes.byteLength;
    // A visitor who sends faster than the client takes stops being read: TCP pushes back on them.
    if (this.outboundBytes > this.windowBytes && !ws.isPaused) ws.pause();
    this.outbound = this.outbound.then(async () => {
      await this.owner.writeFrames(this, kind, bytes, true);
      this.outboundBytes -= bytes.byteLength;
      if (ws.isPaused && this.outboundBytes <= this.windowBytes / 2) ws.resume();
    });
  }

  ping(data: Buffer): void {
    if (!this.finished) this.owner.sendSmall(this, FrameKind.WS_PING, new Uint8Array(data));
  }

  pong(data: Buffer): void {
    if (!this.finished) this.owner.sendSmall(this, FrameKind.WS_PONG, new Uint8Array(data));
  }

  /** The visitor's socket drained: grant what was held back. */
  drain(): void {
    this.releaseGrant();
  }

  /** The visitor's socket closed (or vanished): the client closes the local socket the same way. */
  closed(code: number, reason: string): void {
    if (this.visitorClosed) return;
    this.visitorClosed = true;
    if (this.finished) return;
    // Nobody reads this stream any more. Grants held back for a visitor who had stopped reading are
    // released, or a client whose window they had used up could never send the WS_CLOSE queued
    // behind its last messages, and the stream would stay open for good (found end to end: a local
    // server flooding a visitor who stopped reading and then left).
    this.releaseGrant();
    if (code === ABNORMAL && this.outboundBytes > 0) {
      // The visitor vanished with messages still waiting for the client's window: the local service
      // is not reading, and a WS_CLOSE queued behind them would wait for it for good, keeping the
      // stream and the local socket open (found end to end). As when a visitor leaves an HTTP
      // request, what was not relayed is dropped: the client closes the local socket 1001 at once.
      this.owner.sendSmall(this, FrameKind.WS_CLOSE, encodeWsClose(GOING_AWAY, 'visitor went away'));
      this.owner.abandoned(this);
      this.end();
      return;
    }
    // After everything the visitor sent, in order.
    this.outbound = this.outbound.then(() => {
      if (this.finished) return;
      const payload =
        code === NO_STATUS ? encodeWsClose() : code === ABNORMAL ? encodeWsClose(GOING_AWAY, 'visitor went away') : encodeWsClose(code, clampReason(reason));
      this.owner.sendSmall(this, FrameKind.WS_CLOSE, payload);
      if (this.clientClosed) this.end();
    });
  }

  // ───────── frames from the client ─────────

  /** A WS_* frame for this stream from the client. */
  frame(kind: number, payload: Uint8Array, flags: number): void {
    if (this.finished) return;
    switch (kind) {
      case FrameKind.WS_TEXT:
      case FrameKind.WS_BINARY:
        return this.piece(kind, payload, (flags & FLAG_FIN) !== 0);
      case FrameKind.WS_PING:
        this.visitor?.ping(payload);
        return;
      case FrameKind.WS_PONG:
        this.visitor?.pong(payload);
        return;
      case FrameKind.WS_CLOSE: {
        const close = decodeWsClose(payload);
        this.clientClosed = true;
        if (close.ok) this.closeVisitor(close.code ?? undefined, close.reason);
        else this.closeVisitor(INTERNAL_ERROR, '');
        if (this.visitorClosed) this.end();
      }
    }
  }

  private piece(kind: MessageKind, payload: Uint8Array, fin: boolean): void {
    // The visitor has closed: what the client still sends is dropped (and granted back, see closed()).
    if (this.visitorClosed) {
      this.assembling = undefined;
      this.grant(payload.byteLength);
      return;
    }
    const message = (this.assembling ??= { kind, pieces: [], bytes: 0 });
    message.pieces.push(payload);
    message.bytes += payload.byteLength;
    if (message.bytes > MAX_WS_MESSAGE_BYTES) {
      this.fail({ kind: 'error', error: 'message too big' }, MESSAGE_TOO_BIG, 'message too big');
      this.owner.abandoned(this);
      return;
    }
    // Pieces of a message still being assembled are granted at once (a message larger than the window
    // could never complete otherwise), unless the visitor has stopped reading.
    this.grant(payload.byteLength);
    if (!fin) return;
    this.assembling = undefined;
    const bytes = message.pieces.length === 1 ? message.pieces[0]! : Buffer.concat(message.pieces);
    if (!this.visitor) this.early.push({ kind: message.kind, bytes });
    else this.deliver(message.kind, bytes);
  }

  private deliver(kind: MessageKind, bytes: Uint8Array): void {
    const visitor = this.visitor!;
    const sent = kind === FrameKind.WS_TEXT ? visitor.send(decoder.decode(bytes)) : visitor.send(bytes);
    // 0 means dropped, except for an empty message, which Bun reports as 0 too.
    if (sent === 0 && bytes.byteLength > 0) {
      this.fail({ kind: 'closed' }, INTERNAL_ERROR, 'relay overflow');
      this.owner.abandoned(this);
      return;
    }
    this.owner.counted('out', bytes.byteLength);
  }

  private grant(bytes: number): void {
    this.deferredGrant += bytes;
    if (!this.visitor || this.visitorClosed || this.visitor.getBufferedAmount() < VISITOR_HIGH_WATER_BYTES) this.releaseGrant();
  }

  private releaseGrant(): void {
    if (this.deferredGrant === 0 || this.finished) return;
    const bytes = this.deferredGrant;
    this.deferredGrant = 0;
    this.owner.consumed(this, bytes);
  }

  private closeVisitor(code: number | undefined, reason: string): void {
    const visitor = this.visitor;
    if (!visitor || this.visitorClosed) return;
    this.visitorClosed = true;
    if (code === undefined) visitor.close();
    else visitor.close(code, reason);
  }

  private end(): void {
    if (this.finished) return;
    this.finished = true;
    this.owner.ended(this);
  }
}

/** A close reason fits in 123 UTF-8 bytes; a longer one is cut at a character boundary. */
function clampReason(reason: string): string {
  let clamped = reason;
  while (encoder.encode(clamped).byteLength > 123) clamped = clamped.slice(0, -1);
  return clamped;
}
