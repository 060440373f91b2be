/**
 * One visitor's WebSocket passed through to the local service: a local WebSocket opened for
 * WsUpgrade, messages relayed both ways as WS_TEXT/WS_BINARY pieces of at most 64 KiB, ping/pong
 * and close codes relayed, both directions within the flow-control windows when they are on.
 */
import {
  DEFAULT_STREAM_WINDOW_BYTES,
  FLAG_FIN,
  FrameKind,
  MAX_FRAME_PAYLOAD_BYTES,
  MAX_WS_CONTROL_PAYLOAD_BYTES,
  decodeWsClose,
  encodeFrame,
  encodeWsClose,
  isSendableCloseCode,
  type Frame,
  type WsUpgradeData,
} from '../tunnel/protocol.ts';
import { pathWithoutQuery } from './events.ts';
import { GrantBatcher, SendWindow, creditGranted, isFlowControlled, takeCredit } from './flow-control.ts';
import { describeUpgradeFailure } from './local-error.ts';
import type { RelayStream, StreamContext } from './stream-context.ts';

/**
 * Most bytes of one stream waiting to go to the server (64 MiB): messages the local service sent
 * faster than the visitor takes them. Reading pauses long before (at the stream window); only
 * messages Bun had already read when it paused can get here. Past it the local socket is closed
 * 1009 and the visitor gets 1011.
 */
export const MAX_QUEUED_TO_SERVER_BYTES = 64 * 1024 * 1024;
/** Largest message reassembled from the server (64 MiB); a bigger one closes both sides with 1009. */
export const MAX_MESSAGE_FROM_SERVER_BYTES = 64 * 1024 * 1024;
/**
 * Bytes the local socket may hold unsent (its `bufferedAmount`, 4 MiB) before we stop granting the
 * server more: a local service that reads nothing stalls its own stream, and nothing else.
 */
export const LOCAL_HIGH_WATER_BYTES = 4 * 1024 * 1024;
/** How often held-back grants look at the local socket's `bufferedAmount` again, in ms (Bun's client has no drain event). */
const LOCAL_DRAIN_POLL_MS = 5;

// Close codes the relay uses itself (RFC 6455 §7.4.1).
const GOING_AWAY = 1001;
const NO_STATUS = 1005;
const ABNORMAL = 1006;
const MESSAGE_TOO_BIG = 1009;
const INTERNAL_ERROR = 1011;
/** The WS_CLOSE reason when the local server vanished without a close frame. */
export const LOCAL_WENT_AWAY = 'local service went away';

type MessageKind = typeof FrameKind.WS_TEXT | typeof FrameKind.WS_BINARY;
/** What waits to go to the server, in order: whole messages, then at most one WS_CLOSE. */
type Outgoing = { kind: MessageKind; bytes: Uint8Array } | { kind: typeof FrameKind.WS_CLOSE; payload: Uint8Array };

const utf8Encoder = new TextEncoder();
// Lenient: the server's WebSocket already checked the visitor's text, and one bad byte from a
// broken server should not cost the whole socket.
const utf8Decoder = new TextDecoder();

/** How the local socket is opened; ws-upgrade.ts builds it from WsUpgrade. */
export interface LocalSocketPlan {
  url: string;
  headers: Headers;
  protocols: string[];
}

/** A passed-through WebSocket. Created on WsUpgrade; forgotten once both sides have closed, or abandoned. */
export class WebSocketStream implements RelayStream {
  private readonly startedAtMs: number;
  private readonly sendWindow: SendWindow | undefined;
  private readonly receiveGrants: GrantBatcher | undefined;
  private readonly pauseAtBytes: number;
  private socket!: WebSocket;
  private status: number | null = null;
  private upgradeError: Event | undefined;
  private askedProtocols = false;
  private finished = false;
  private wakeStopped!: () => void;
  private readonly stopped = new Promise<void>((resolve) => (this.wakeStopped = resolve));
  /** The local socket has closed (its close event fired). */
  private localClosed = false;
  /** Why the stream ended, for the log: undefined for a clean close. */
  private endNote: string | undefined;
  // Server → local.
  private assembling: { kind: MessageKind; pieces: Uint8Array[]; bytes: number } | undefined;
  private serverClosed = false;
  private heldGrantBytes = 0;
  private grantPoll: ReturnType<typeof setTimeout> | undefined;
  // Local → server.
  private outbox: Outgoing[] = [];
  private outboxBytes = 0;
  private pumping = false;
  private paused = false;
  private closeQueued = false;

  /**
   * Opens the local socket for `upgrade`. Returns undefined, after StreamError and a log line, when
   * it cannot even be constructed (a subprotocol Bun refuses, say).
   */
  static open(ctx: StreamContext, upgrade: WsUpgradeData, plan: LocalSocketPlan): WebSocketStream | undefined {
    const stream = new WebSocketStream(ctx, upgrade, plan);
    return stream.connect(plan.protocols) ? stream : undefined;
  }

  private constructor(
    private readonly ctx: StreamContext,
    private readonly upgrade: WsUpgradeData,
    private readonly plan: LocalSocketPlan,
  ) {
    this.startedAtMs = ctx.now();
    const flow = ctx.flow;
    if (flow !== undefined) {
      this.sendWindow = new SendWindow(flow.streamWindowBytes);
      this.receiveGrants = new GrantBatcher(flow.streamWindowBytes, (bytes) =>
        this.ctx.sender.control({ type: 'WindowUpdate', data: { stream_id: this.id, bytes } }),
      );
    }
    this.pauseAtBytes = flow?.streamWindowBytes ?? DEFAULT_STREAM_WINDOW_BYTES;
  }

  private get id(): number {
    return this.upgrade.stream_id;
  }

  /** Opens the local socket asking for `protocols`; false, after StreamError, when it cannot even be constructed (a subprotocol Bun refuses, say). */
  private connect(protocols: string[]): boolean {
    let socket: WebSocket;
    try {
      socket = new WebSocket(this.plan.url, {
        headers: this.plan.headers,
        ...(protocols.length === 0 ? {} : { protocols }),
        // Loopback has no bandwidth to save; the visitor's side negotiates its own compression.
        perMessageDeflate: false,
      });
    } catch (error) {
      this.refuse(`WebSocket upgrade failed: ${error instanceof Error ? error.name : 'invalid request'}`);
      return false;
    }
    this.socket = socket;
    this.askedProtocols = protocols.length > 0;
    socket.binaryType = 'arraybuffer';
    // Events of a socket given up for another (see onLocalClose) are ignored.
    const mine = () => socket === this.socket;
    socket.addEventListener('open', () => mine() && this.onLocalOpen());
    socket.addEventListener('message', (event) => mine() && this.onLocalMessage(event.data));
    socket.addEventListener('ping', (event) => mine() && this.onLocalControl(FrameKind.WS_PING, event.data));
    socket.addEventListener('pong', (event) => mine() && this.onLocalControl(FrameKind.WS_PONG, event.data));
    socket.addEventListener('error', (event) => {
      if (mine()) this.upgradeError ??= event;
    });
    socket.addEventListener('close', (event) => mine() && this.onLocalClose(event.code, event.reason));
    return true;
  }

  // ───────────────────────────── the local socket ─────────────────────────────

  private onLocalOpen(): void {
    if (this.finished) return;
    const protocol = this.socket.protocol;
    try {
      this.ctx.sender.control({ type: 'WsUpgradeAccepted', data: { stream_id: this.id, ...(protocol ? { protocol } : {}) } });
    } catch {
      // A subprotocol the protocol cannot carry (encodeControl refused it before sending): the
      // visitor could not be told it, so no passthrough.
      this.closeLocal(INTERNAL_ERROR, '');
      return this.refuse('WebSocket upgrade failed: unusable subprotocol');
    }
    this.status = 101;
  }

  private onLocalMessage(data: unknown): void {
    if (this.finished || this.closeQueued) return;
    if (typeof data === 'string') this.enqueue({ kind: FrameKind.WS_TEXT, bytes: utf8Encoder.encode(data) });
    else if (data instanceof ArrayBuffer) this.enqueue({ kind: FrameKind.WS_BINARY, bytes: new Uint8Array(data) });
  }

  // Bun has already answered a local ping with a pong; relaying it lets the visitor answer too
  // (one extra pong for the local server, which RFC 6455 §5.5.3 allows).
  private onLocalControl(kind: typeof FrameKind.WS_PING | typeof FrameKind.WS_PONG, data: unknown): void {
    if (this.finished || this.status !== 101 || this.closeQueued) return;
    const payload = data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(0);
    void this.ctx.sender.data(encodeFrame(this.id, kind, 0, payload.subarray(0, MAX_WS_CONTROL_PAYLOAD_BYTES)));
  }

  private onLocalClose(code: number, reason: string): void {
    this.localClosed = true;
    this.releaseHeldGrants();
    if (this.finished) return;
    if (this.status === null) {
      // Bun's client fails a handshake whose answer names no subprotocol when some were asked for;
      // a browser accepts it (RFC 6455 §4.1 allows it), so the local server gets one more try
      // without them, as the visitor's browser would have got a socket without a subprotocol.
      if (this.askedProtocols && /Missing client protocol/i.test((this.upgradeError as ErrorEvent | undefined)?.message ?? '')) {
        this.localClosed = false;
        this.upgradeError = undefined;
        this.connect([]);
        return;
      }
      return this.refuse(describeUpgradeFailure(this.upgradeError));
    }
    if (code === ABNORMAL) this.endNote ??= LOCAL_WENT_AWAY;
    // After every message the local service sent, in order; the stream ends once it is out.
    if (!this.closeQueued) this.queueClose(closePayload(code, reason));
    else if (this.outbox.length === 0 && !this.pumping) this.finish();
  }

  /** Closes the local socket; a socket still connecting is dropped. */
  private closeLocal(code: number | undefined, reason: string): void {
    const socket = this.socket;
    if (socket === undefined) return;
    if (socket.readyState === WebSocket.CONNECTING) return socket.terminate();
    if (socket.readyState !== WebSocket.OPEN) return;
    try {
      if (code === undefined) socket.close();
      else socket.close(code, reason);
    } catch {
      socket.close();
    }
  }

  // ───────────────────────────── from the server ─────────────────────────────

  onFrame(frame: Frame): void {
    const { kind, payload } = frame;
    if (this.finished) {
      if (isFlowControlled(kind)) this.ctx.flow?.receiveGrants.consumed(payload.byteLength);
      return;
    }
    switch (kind) {
      case FrameKind.WS_TEXT:
      case FrameKind.WS_BINARY:
        return this.onPiece(kind, payload, (frame.flags & FLAG_FIN) !== 0);
      case FrameKind.WS_CLOSE:
        return this.onServerClose(payload);
      case FrameKind.WS_PING:
      case FrameKind.WS_PONG:
        if (this.socket.readyState !== WebSocket.OPEN || this.serverClosed) return;
        if (kind === FrameKind.WS_PING) this.socket.ping(payload);
        else this.socket.pong(payload);
        return;
      default:
        // DATA has no place on a WebSocket stream: dropped, and returned to the windows.
        this.hold(payload.byteLength);
    }
  }

  private onPiece(kind: MessageKind, payload: Uint8Array, fin: boolean): void {
    // Pieces count as handed over once they are ours to keep (a message bigger than the window
    // could never complete otherwise); the local socket's own buffer decides when they are granted.
    this.hold(payload.byteLength);
    if (this.status !== 101 || this.serverClosed || this.localClosed) return;
    const message = (this.assembling ??= { kind, pieces: [], bytes: 0 });
    message.pieces.push(payload);
    message.bytes += payload.byteLength;
    if (message.bytes > MAX_MESSAGE_FROM_SERVER_BYTES) {
      this.assembling = undefined;
      this.endNote = 'message too big';
      this.closeLocal(MESSAGE_TOO_BIG, 'message too big');
      this.queueClose(encodeWsClose(MESSAGE_TOO_BIG, 'message too big'));
      this.serverClosed = true;
      return;
    }
    if (!fin) return;
    this.assembling = undefined;
    const bytes = message.pieces.length === 1 ? message.pieces[0]! : Buffer.concat(message.pieces, message.bytes);
    if (message.kind === FrameKind.WS_TEXT) this.socket.send(utf8Decoder.decode(bytes));
    else this.socket.send(bytes);
    this.releaseHeldGrants();
  }

  private onServerClose(payload: Uint8Array): void {
    if (this.serverClosed) return;
    this.serverClosed = true;
    this.assembling = undefined;
    const close = decodeWsClose(payload);
    // Our reply, and then the end of the stream, follow from the local socket's close event.
    if (!close.ok || close.code === null) this.closeLocal(undefined, '');
    else this.closeLocal(close.code, close.reason);
  }

  onWindowUpdate(bytes: number): void {
    this.sendWindow?.grant(bytes);
  }

  onRemoteEnd(error: string | undefined): void {
    if (this.finished) return;
    // StreamClose: the visitor left, or the tunnel is ending. StreamError: the server gave up on it.
    this.closeLocal(error === undefined ? GOING_AWAY : INTERNAL_ERROR, '');
    this.endNote = error ?? 'visitor went away';
    this.finish();
  }

  abort(): void {
    if (this.finished) return;
    this.closeLocal(GOING_AWAY, 'tunnel connection lost');
    this.endNote = 'tunnel connection lost';
    this.finish();
  }

  // ───────────────────────────── grants for what we received ─────────────────────────────

  private hold(bytes: number): void {
    if (this.ctx.flow === undefined || bytes === 0) return;
    this.heldGrantBytes += bytes;
    this.releaseHeldGrants();
  }

  // Held while the local socket has more than LOCAL_HIGH_WATER_BYTES unsent, so the server stops
  // once the window is used up; a closed socket needs no more and everything is returned.
  private releaseHeldGrants(): void {
    if (this.heldGrantBytes === 0) return;
    const socket = this.socket;
    if (socket !== undefined && socket.readyState === WebSocket.OPEN && socket.bufferedAmount > LOCAL_HIGH_WATER_BYTES) {
      this.grantPoll ??= setTimeout(() => {
        this.grantPoll = undefined;
        this.releaseHeldGrants();
      }, LOCAL_DRAIN_POLL_MS);
      return;
    }
    const bytes = this.heldGrantBytes;
    this.heldGrantBytes = 0;
    if (!this.finished && !this.serverClosed) this.receiveGrants?.consumed(bytes);
    this.ctx.flow?.receiveGrants.consumed(bytes);
  }

  // ───────────────────────────── to the server ─────────────────────────────

  private enqueue(item: Outgoing & { kind: MessageKind }): void {
    this.outbox.push(item);
    this.outboxBytes += item.bytes.byteLength;
    if (this.outboxBytes > MAX_QUEUED_TO_SERVER_BYTES) return this.overflow();
    // Bun stops reading the local socket: TCP pushes back on the local service.
    if (!this.paused && this.outboxBytes > this.pauseAtBytes) this.paused = this.socket.pause();
    void this.pump();
  }

  private overflow(): void {
    this.outbox = [];
    this.outboxBytes = 0;
    this.endNote = 'local service sent more than the visitor took';
    this.closeLocal(MESSAGE_TOO_BIG, 'relay buffer full');
    this.queueClose(encodeWsClose(INTERNAL_ERROR, 'relay buffer full'));
  }

  private queueClose(payload: Uint8Array): void {
    if (this.closeQueued) return;
    this.closeQueued = true;
    this.outbox.push({ kind: FrameKind.WS_CLOSE, payload });
    void this.pump();
  }

  /** Sends the outbox in order, one piece at a time, each within the windows. */
  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (!this.finished) {
        const item = this.outbox[0];
        if (item === undefined) return;
        if (item.kind === FrameKind.WS_CLOSE) {
          if (!(await this.ctx.sender.data(encodeFrame(this.id, FrameKind.WS_CLOSE, 0, item.payload)))) return;
          this.outbox.shift();
          // Both ways are over once the local socket has closed too (now, or when its close comes).
          if (this.localClosed) this.finish();
          return;
        }
        if (!(await this.sendMessage(item))) return;
        // overflow() may have emptied the outbox meanwhile: only the message just sent goes.
        if (this.outbox[0] === item) this.outbox.shift();
      }
    } finally {
      this.pumping = false;
    }
  }

  /**
   * One message as pieces of at most 64 KiB, FIN on the last (an empty message is one empty FIN
   * frame). False when the stream or connection ended; true also when overflow() dropped it midway.
   */
  private async sendMessage(item: { kind: MessageKind; bytes: Uint8Array }): Promise<boolean> {
    const { kind, bytes } = item;
    const flow = this.ctx.flow;
    let offset = 0;
    do {
      let pieceBytes = Math.min(MAX_FRAME_PAYLOAD_BYTES, bytes.byteLength - offset);
      if (flow !== undefined && this.sendWindow !== undefined && pieceBytes > 0) {
        const credit = takeCredit(this.sendWindow, flow.sendWindow, pieceBytes);
        if (credit === 0) {
          await Promise.race([creditGranted(this.sendWindow, flow.sendWindow), this.stopped]);
          if (this.finished) return false;
          if (this.outbox[0] !== item) return true;
          continue;
        }
        pieceBytes = credit;
      }
      const last = offset + pieceBytes === bytes.byteLength;
      const frame = encodeFrame(this.id, kind, last ? FLAG_FIN : 0, bytes.subarray(offset, offset + pieceBytes));
      if (!(await this.ctx.sender.data(frame)) || this.finished) return false;
      if (this.outbox[0] !== item) return true;
      offset += pieceBytes;
      this.sent(pieceBytes);
    } while (offset < bytes.byteLength);
    return true;
  }

  private sent(bytes: number): void {
    this.outboxBytes -= bytes;
    if (this.paused && this.outboxBytes <= this.pauseAtBytes / 2) {
      this.paused = false;
      this.socket.resume();
    }
  }

  // ───────────────────────────── endings ─────────────────────────────

  /** The local socket never opened: StreamError, which becomes the visitor's 502. */
  private refuse(error: string): void {
    if (this.finished) return;
    this.ctx.sender.control({ type: 'StreamError', data: { stream_id: this.id, error } });
    this.status = 502;
    this.endNote = error;
    this.finish();
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.wakeStopped();
    this.sendWindow?.close();
    clearTimeout(this.grantPoll);
    this.grantPoll = undefined;
    // Whatever the server sent that we still held is the connection's again.
    const held = this.heldGrantBytes;
    this.heldGrantBytes = 0;
    this.ctx.flow?.receiveGrants.consumed(held);
    this.outbox = [];
    this.ctx.forget(this.id);
    this.ctx.logRequest({
      startedAtMs: this.startedAtMs,
      method: 'GET',
      path: pathWithoutQuery(this.upgrade.path),
      status: this.status,
      durationMs: Math.max(0, Math.round(this.ctx.now() - this.startedAtMs)),
      websocket: true,
      ...(this.endNote === undefined ? {} : { error: this.endNote }),
    });
  }
}

/**
 * The WS_CLOSE for how the local socket closed: its code and reason; empty for 1005 (no status);
 * 1011 "local service went away" for 1006 (no close frame) and any other code that may not be sent.
 */
export function closePayload(code: number, reason: string): Uint8Array {
  if (code === NO_STATUS) return encodeWsClose();
  if (!isSendableCloseCode(code)) return encodeWsClose(INTERNAL_ERROR, LOCAL_WENT_AWAY);
  try {
    return encodeWsClose(code, reason);
  } catch {
    // A reason we cannot carry (over 123 bytes): the code still goes.
    return encodeWsClose(code);
  }
}
