/** WebSocket passthrough, client side: the client opens real local WebSockets for WsUpgrade and relays messages, pings and closes against a fake protocol server. */
import { createHash } from 'node:crypto';
import { createServer, type Server as NetServer, type Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'bun:test';
import type { ServerWebSocket } from 'bun';
import { FrameKind, type HeaderPair } from '../../src/tunnel/protocol.ts';
import { FakeTunnelServer, type FakeConnection, type HandshakeOptions } from './fake-server.ts';
import { closedPort, patternBytes, startClient, type RunningClient } from './helpers.ts';

const KIB = 1024;
const MIB = 1024 * KIB;
const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
const utf8 = (value: string) => new TextEncoder().encode(value);

/** What the local server saw of one socket, by the `id` query parameter the test gave it. */
interface LocalSocketData {
  id: string;
  path: string;
  headers: [string, string][];
}
interface LocalRecord {
  socket: ServerWebSocket<LocalSocketData>;
  upgrade: LocalSocketData;
  close?: { code: number; reason: string };
  pings: string[];
  pongs: string[];
}

/** Every socket the local server has seen, and waits on what happens to them. */
class LocalSockets {
  readonly byId = new Map<string, LocalRecord>();
  private waiters = new Set<() => boolean>();

  until<T>(check: () => T | undefined): Promise<T> {
    const now = check();
    if (now !== undefined) return Promise.resolve(now);
    return new Promise((resolve) => {
      this.waiters.add(() => {
        const value = check();
        if (value === undefined) return false;
        resolve(value);
        return true;
      });
    });
  }

  socket(id: string): Promise<LocalRecord> {
    return this.until(() => this.byId.get(id));
  }

  closed(id: string): Promise<{ code: number; reason: string }> {
    return this.until(() => this.byId.get(id)?.close);
  }

  notify(): void {
    for (const waiter of [...this.waiters]) if (waiter()) this.waiters.delete(waiter);
  }
}

let local: ReturnType<typeof Bun.serve<LocalSocketData>>;
const locals = new LocalSockets();

beforeAll(() => {
  // Bun's own WebSocket server, echoing every message as it came (text as text, binary as binary).
  local = Bun.serve<LocalSocketData>({
    port: 0,
    hostname: '127.0.0.1',
    fetch(req, server) {
      const url = new URL(req.url);
      if (url.pathname === '/refuse') return new Response('no sockets here', { status: 404 });
      const asked = (req.headers.get('sec-websocket-protocol') ?? '').split(',').map((p) => p.trim());
      const data = { id: url.searchParams.get('id') ?? '', path: url.pathname + url.search, headers: [...req.headers] };
      const headers = asked.includes('chat') ? { 'Sec-WebSocket-Protocol': 'chat' } : undefined;
      return server.upgrade(req, { data, headers }) ? undefined : new Response('not an upgrade', { status: 400 });
    },
    websocket: {
      maxPayloadLength: 64 * MIB,
      backpressureLimit: 256 * MIB,
      open(ws) {
        locals.byId.set(ws.data.id, { socket: ws, upgrade: ws.data, pings: [], pongs: [] });
        locals.notify();
      },
      message(ws, message) {
        ws.send(message);
      },
      ping(ws, data) {
        locals.byId.get(ws.data.id)?.pings.push(Buffer.from(data).toString());
        locals.notify();
      },
      pong(ws, data) {
        locals.byId.get(ws.data.id)?.pongs.push(Buffer.from(data).toString());
        locals.notify();
      },
      close(ws, code, reason) {
        const record = locals.byId.get(ws.data.id);
        if (record !== undefined) record.close = { code, reason };
        locals.notify();
      },
    },
  });
});
afterAll(() => local.stop(true));

/**
 * A hand-written WebSocket server for what Bun's cannot do: it completes the handshake (choosing no
 * subprotocol, whatever was asked), then by path: `/stuck` stops reading (TCP fills up, and the
 * client's bufferedAmount for it grows), `/empty-close` sends a close frame without a status.
 */
let raw: NetServer;
const rawSockets: Socket[] = [];
/** The request heads the raw server received. */
const rawRequests: string[] = [];
beforeAll(async () => {
  raw = createServer((socket) => {
    rawSockets.push(socket);
    let head = '';
    const onData = (chunk: Buffer) => {
      head += chunk.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      socket.off('data', onData);
      rawRequests.push(head);
      const key = /sec-websocket-key: *(\S+)/i.exec(head)?.[1] ?? '';
      const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
      if (head.startsWith('GET /stuck')) socket.pause();
      else if (head.startsWith('GET /empty-close')) socket.end(Buffer.from([0x88, 0x00]));
      else socket.resume();
    };
    socket.on('data', onData);
  });
  await new Promise<void>((resolve) => raw.listen(0, '127.0.0.1', resolve));
});
afterAll(() => {
  for (const socket of rawSockets) socket.destroy();
  raw.close();
});
const rawPort = () => (raw.address() as { port: number }).port;

let fake: FakeTunnelServer;
let running: RunningClient | undefined;
afterEach(async () => {
  await running?.stop();
  running = undefined;
  fake?.stop();
});

/** A client connected to a fresh fake server, past TunnelReady (flow control on unless told otherwise). */
async function connected(port = local.port!, options: Parameters<typeof startClient>[2] = {}, handshake: HandshakeOptions = {}): Promise<FakeConnection> {
  fake = new FakeTunnelServer();
  running = startClient(fake, port, options);
  const connection = await fake.connection();
  await connection.handshake(handshake);
  await running.reporter.until(() => running!.reporter.readies.length === 1);
  return connection;
}

const VISITOR_HEADERS: HeaderPair[] = [
  ['Host', 'myapp.expose.test'],
  ['Sec-WebSocket-Key', 'dGhlIHNhbXBsZSBub25jZQ=='],
  ['Sec-WebSocket-Version', '13'],
  ['Sec-WebSocket-Extensions', 'permessage-deflate; client_max_window_bits'],
  ['X-Forwarded-For', '203.0.113.9'],
  ['X-Forwarded-Proto', 'https'],
  ['X-Forwarded-Host', 'myapp.expose.test'],
];

/** Sends WsUpgrade for `/socket?id=<id>` and waits for WsUpgradeAccepted. */
async function upgrade(connection: FakeConnection, streamId: number, id: string, headers: HeaderPair[] = VISITOR_HEADERS) {
  connection.wsUpgrade(streamId, `/socket?id=${id}`, headers);
  return connection.waitFor(() => connection.all('WsUpgradeAccepted').find((m) => m.data.stream_id === streamId));
}

describe('opening the local WebSocket', () => {
  it('answers WsUpgradeAccepted with the subprotocol the local server chose', async () => {
    const connection = await connected();
    const withChat = await upgrade(connection, 1, 'proto', [...VISITOR_HEADERS, ['Sec-WebSocket-Protocol', 'other, chat'], ['Sec-WebSocket-Protocol', 'chat']]);
    expect(withChat.data).toEqual({ stream_id: 1, protocol: 'chat' });
    expect((await locals.socket('proto')).upgrade.headers).toContainEqual(['sec-websocket-protocol', 'other, chat']);
  });

  it('answers WsUpgradeAccepted without a protocol when the local server chose none, as a browser would accept', async () => {
    const connection = await connected(rawPort());
    connection.wsUpgrade(1, '/no-protocol', [...VISITOR_HEADERS, ['Sec-WebSocket-Protocol', 'chat']]);
    expect((await connection.message('WsUpgradeAccepted')).data).toEqual({ stream_id: 1 });
    // Bun's client refuses such an answer to a request that named subprotocols: the second try names none.
    const tries = rawRequests.filter((head) => head.startsWith('GET /no-protocol '));
    expect(tries.map((head) => /sec-websocket-protocol: *chat/i.test(head))).toEqual([true, false]);
  });

  it('rewrites Host to the local target, makes its own handshake headers, keeps the others and the path as given', async () => {
    const connection = await connected();
    connection.wsUpgrade(1, '//evil.example/socket?id=evil&token=x', VISITOR_HEADERS);
    const seen = (await locals.socket('evil')).upgrade;
    expect(seen.path).toBe('//evil.example/socket?id=evil&token=x');
    const headers = new Headers(seen.headers);
    expect(headers.get('host')).toBe(`127.0.0.1:${local.port}`);
    expect(headers.get('sec-websocket-key')).not.toBe('dGhlIHNhbXBsZSBub25jZQ==');
    expect(headers.get('sec-websocket-extensions')).toBeNull();
    expect(headers.get('x-forwarded-for')).toBe('203.0.113.9');
    expect(headers.get('x-forwarded-proto')).toBe('https');
    expect(headers.get('x-forwarded-host')).toBe('myapp.expose.test');
    // The path's query stays out of the request log.
    connection.send({ type: 'StreamClose', data: { stream_id: 1 } });
    await running!.reporter.until(() => running!.reporter.requests.length === 1);
    expect(running!.reporter.requests[0]!.path).toBe('//evil.example/socket');
  });

  it("keeps the visitor's Host with --host-header preserve", async () => {
    const connection = await connected(local.port!, { hostHeader: 'preserve' });
    await upgrade(connection, 1, 'preserve');
    expect(new Headers((await locals.socket('preserve')).upgrade.headers).get('host')).toBe('myapp.expose.test');
  });

  it('answers StreamError when the local server refuses the upgrade, and logs a 502', async () => {
    const connection = await connected();
    connection.wsUpgrade(1, '/refuse?secret=1', VISITOR_HEADERS);
    expect(await connection.result(1)).toEqual({ kind: 'error', error: 'WebSocket upgrade refused (404)', status: undefined });
    const reporter = running!.reporter;
    await reporter.until(() => reporter.requests.length === 1);
    expect(reporter.requests[0]).toMatchObject({ method: 'GET', path: '/refuse', status: 502, websocket: true, error: 'WebSocket upgrade refused (404)' });
    expect(connection.all('WsUpgradeAccepted')).toEqual([]);
  });

  it('answers StreamError "Connection refused" when nothing listens on the local port', async () => {
    const connection = await connected(closedPort());
    connection.wsUpgrade(1, '/socket', VISITOR_HEADERS);
    expect(await connection.result(1)).toEqual({ kind: 'error', error: 'Connection refused', status: undefined });
    await running!.reporter.until(() => running!.reporter.requests.length === 1);
    expect(running!.reporter.requests[0]).toMatchObject({ status: 502, websocket: true, error: 'Connection refused' });
  });
});

describe('messages', () => {
  it('relays text and binary both ways, each whole and of its kind, empty ones included', async () => {
    const connection = await connected();
    await upgrade(connection, 1, 'kinds');
    const binary = new Uint8Array([0, 1, 2, 255]);
    await connection.sendWsMessage(1, 'héllo 👋');
    await connection.sendWsMessage(1, binary);
    await connection.sendWsMessage(1, '');
    await connection.sendWsMessage(1, new Uint8Array(0));
    const echoed = await connection.wsMessagesUpTo(1, 4);
    expect(echoed.map((m) => m.kind)).toEqual(['text', 'binary', 'text', 'binary']);
    expect(text(echoed[0]!.bytes)).toBe('héllo 👋');
    expect([...echoed[1]!.bytes]).toEqual([0, 1, 2, 255]);
    expect(echoed[2]!.bytes.byteLength).toBe(0);
    // An empty message is one empty frame with FIN.
    const emptyFrames = connection.frames.filter((f) => f.streamId === 1 && f.payload.byteLength === 0 && f.kind !== FrameKind.WS_CLOSE);
    expect(emptyFrames.map((f) => [f.kind, f.fin])).toEqual([
      [FrameKind.WS_TEXT, true],
      [FrameKind.WS_BINARY, true],
    ]);
    expect(connection.violations).toEqual([]);
  });

  it('carries a 16 MiB message both ways intact, within the flow-control windows', async () => {
    const connection = await connected();
    connection.grantEverything();
    await upgrade(connection, 1, 'big');
    const big = patternBytes(16 * MIB, 11);
    const bigText = 'é'.repeat(8 * MIB); // 16 MiB of UTF-8
    await connection.sendWsMessage(1, big);
    await connection.sendWsMessage(1, bigText);
    const [binary, textual] = await connection.wsMessagesUpTo(1, 2);
    expect(binary!.kind).toBe('binary');
    expect(Buffer.from(binary!.bytes).equals(Buffer.from(big))).toBe(true);
    expect(textual!.kind).toBe('text');
    expect(text(textual!.bytes) === bigText).toBe(true);
    // No piece over 64 KiB, and never more than granted (the fake server checks every frame).
    expect(Math.max(...connection.frames.map((f) => f.payload.byteLength))).toBeLessThanOrEqual(64 * KIB);
    expect(connection.violations).toEqual([]);
    // The server could send 32 MiB on a 1 MiB window only because the client granted it back as it went.
    expect(connection.clientWindow(1).granted).toBeGreaterThanOrEqual(31 * MIB);
  });

  it('keeps 1,000 small messages in order both ways', async () => {
    const connection = await connected();
    await upgrade(connection, 1, 'order');
    for (let i = 0; i < 1000; i++) await connection.sendWsMessage(1, i % 2 === 0 ? `message ${i}` : utf8(`binary ${i}`));
    const echoed = await connection.wsMessagesUpTo(1, 1000);
    expect(echoed.map((m, i) => `${m.kind}:${text(m.bytes)}`)).toEqual(
      Array.from({ length: 1000 }, (_, i) => (i % 2 === 0 ? `text:message ${i}` : `binary:binary ${i}`)),
    );
  });

  it('never sends more WebSocket payload than the server granted', async () => {
    const windowBytes = 64 * KIB;
    const connection = await connected(local.port!, {}, { window: windowBytes });
    await upgrade(connection, 1, 'window');
    const record = await locals.socket('window');
    const messages = Array.from({ length: 5 }, (_, i) => patternBytes(100 * KIB, i));
    for (const message of messages) record.socket.send(message);
    const total = 5 * 100 * KIB;
    let granted = windowBytes;
    // Grant more only once the client has used all it had: a client that ignored the window would
    // have sent everything by then, and the fake server records every byte over the grant.
    while (connection.bytesReceived(1) < total) {
      await connection.waitFor(() => (connection.bytesReceived(1) >= Math.min(granted, total) ? true : undefined));
      if (connection.bytesReceived(1) >= total) break;
      expect(connection.bytesReceived(1)).toBe(granted);
      connection.grant(1, windowBytes);
      granted += windowBytes;
    }
    const received = await connection.wsMessagesUpTo(1, 5);
    received.forEach((message, i) => expect(Buffer.from(message.bytes).equals(Buffer.from(messages[i]!))).toBe(true));
    expect(connection.violations).toEqual([]);
  });

  it('closes a local socket that sends more than it may queue: 1009 to the local server, 1011 to the visitor', async () => {
    const connection = await connected();
    await upgrade(connection, 1, 'flood');
    // One message over the 64 MiB a stream may queue towards a visitor who has not read a byte.
    (await locals.socket('flood')).socket.send(new Uint8Array(64 * MIB + 1));
    expect(await locals.closed('flood')).toEqual({ code: 1009, reason: 'relay buffer full' });
    expect(await connection.wsClose(1)).toEqual({ code: 1011, reason: 'relay buffer full' });
    expect(connection.violations).toEqual([]);
    await running!.reporter.until(() => running!.reporter.requests.length === 1);
    expect(running!.reporter.requests[0]).toMatchObject({ status: 101, error: 'local service sent more than the visitor took' });
  });

  it('relays messages without flow control too', async () => {
    const connection = await connected(local.port!, { flowControl: false });
    await upgrade(connection, 1, 'no-flow');
    await connection.sendWsMessage(1, patternBytes(300 * KIB));
    const [echoed] = await connection.wsMessagesUpTo(1, 1);
    expect(Buffer.from(echoed!.bytes).equals(Buffer.from(patternBytes(300 * KIB)))).toBe(true);
    expect(connection.all('WindowUpdate')).toEqual([]);
  });
});

describe('ping and pong', () => {
  it('relays them both ways', async () => {
    const connection = await connected();
    await upgrade(connection, 1, 'ping');
    const record = await locals.socket('ping');
    // The visitor pings: the local server gets the ping, and its answer comes back as WS_PONG.
    connection.sendWsControl(1, FrameKind.WS_PING, utf8('from visitor'));
    await locals.until(() => (record.pings.includes('from visitor') ? true : undefined));
    await connection.waitFor(() => (connection.framesOf(1, FrameKind.WS_PONG).some((p) => text(p) === 'from visitor') ? true : undefined));
    // The local server pings: WS_PING to the server.
    record.socket.ping('from local');
    await connection.waitFor(() => (connection.framesOf(1, FrameKind.WS_PING).some((p) => text(p) === 'from local') ? true : undefined));
    // The visitor's pong reaches the local server.
    connection.sendWsControl(1, FrameKind.WS_PONG, utf8('pong from visitor'));
    await locals.until(() => (record.pongs.includes('pong from visitor') ? true : undefined));
  });
});

describe('closing', () => {
  it("closes the local socket with the visitor's code and reason, then answers WS_CLOSE and forgets the stream", async () => {
    const connection = await connected();
    const cases: Array<[number | undefined, string]> = [
      [1000, ''],
      [1001, 'tab closed'],
      [4000, 'bye'],
      [4999, 'raison d’être'],
      [undefined, ''],
    ];
    for (const [i, [code, reason]] of cases.entries()) {
      const streamId = 1 + 2 * i;
      await upgrade(connection, streamId, `visitor-close-${i}`);
      connection.sendWsClose(streamId, code, reason);
      // No code on the wire is reported as 1005 (no status) by the local server.
      expect(await locals.closed(`visitor-close-${i}`)).toEqual({ code: code ?? 1005, reason });
      const answer = await connection.wsClose(streamId);
      expect(answer).toEqual(code === undefined ? { code: null, reason: '' } : { code, reason });
    }
    const reporter = running!.reporter;
    await reporter.until(() => reporter.requests.length === cases.length);
    for (const entry of reporter.requests) {
      expect(entry).toMatchObject({ method: 'GET', path: '/socket', status: 101, websocket: true });
      expect(entry.error).toBeUndefined();
    }
  });

  it("relays the local server's close code and reason, 1011 when it vanished", async () => {
    const connection = await connected();
    const cases: Array<[string, (ws: ServerWebSocket<LocalSocketData>) => void, { code: number | null; reason: string }]> = [
      ['normal', (ws) => ws.close(1000, 'done'), { code: 1000, reason: 'done' }],
      ['going', (ws) => ws.close(1001), { code: 1001, reason: '' }],
      ['app', (ws) => ws.close(4000, 'kicked'), { code: 4000, reason: 'kicked' }],
      ['app-long', (ws) => ws.close(4321, 'x'.repeat(123)), { code: 4321, reason: 'x'.repeat(123) }],
      ['vanished', (ws) => ws.terminate(), { code: 1011, reason: 'local service went away' }],
    ];
    for (const [i, [id, close, expected]] of cases.entries()) {
      const streamId = 1 + 2 * i;
      await upgrade(connection, streamId, id);
      // A message just before the close arrives before the WS_CLOSE.
      (await locals.socket(id)).socket.send(`last words of ${id}`);
      close((await locals.socket(id)).socket);
      expect(await connection.wsClose(streamId)).toEqual(expected);
      expect(text((await connection.wsMessage(streamId)).bytes)).toBe(`last words of ${id}`);
    }
    // The local socket has closed and WS_CLOSE is out: each stream is over, one log line each.
    const reporter = running!.reporter;
    await reporter.until(() => reporter.requests.length === cases.length);
    expect(reporter.requests.map((r) => r.status)).toEqual(cases.map(() => 101));
    expect(reporter.requests.filter((r) => r.error !== undefined).map((r) => r.error)).toEqual(['local service went away']);
    // A WS_CLOSE from the server now is for a forgotten stream: dropped, and the connection lives on.
    connection.sendWsClose(1, 1000);
    await upgrade(connection, 99, 'after');
    expect(connection.closeInfo).toBeUndefined();
    expect(connection.violations).toEqual([]);
  });

  it('relays a close frame without a status (1005) as an empty WS_CLOSE', async () => {
    const connection = await connected(rawPort());
    connection.wsUpgrade(1, '/empty-close', VISITOR_HEADERS);
    expect(await connection.wsClose(1)).toEqual({ code: null, reason: '' });
    await running!.reporter.until(() => running!.reporter.requests.length === 1);
    expect(running!.reporter.requests[0]).toMatchObject({ status: 101, websocket: true });
    expect(running!.reporter.requests[0]!.error).toBeUndefined();
  });

  it('closes the local socket with 1001 on StreamClose and drops what comes after', async () => {
    const connection = await connected();
    await upgrade(connection, 1, 'abandoned');
    connection.send({ type: 'StreamClose', data: { stream_id: 1 } });
    expect((await locals.closed('abandoned')).code).toBe(1001);
    await connection.sendWsMessage(1, 'too late');
    const reporter = running!.reporter;
    await reporter.until(() => reporter.requests.length === 1);
    expect(reporter.requests[0]).toMatchObject({ status: 101, websocket: true, error: 'visitor went away' });
    // Nothing of ours after StreamClose: no WS_CLOSE, no echo.
    await upgrade(connection, 3, 'next');
    expect(connection.frames.filter((f) => f.streamId === 1)).toEqual([]);
  });

  it('closes every local socket with 1001 when the tunnel connection drops', async () => {
    const connection = await connected();
    await upgrade(connection, 1, 'drop-a');
    await upgrade(connection, 3, 'drop-b');
    connection.ws.close(1011);
    expect((await locals.closed('drop-a')).code).toBe(1001);
    expect((await locals.closed('drop-b')).code).toBe(1001);
  });
});

describe('a local service that reads nothing', () => {
  it('stalls only its own stream: grants stop once its socket buffer is full, the connection window stays free', async () => {
    const connection = await connected(rawPort());
    connection.wsUpgrade(1, '/stuck', VISITOR_HEADERS);
    await connection.message('WsUpgradeAccepted');
    const total = 48 * MIB;
    const message = patternBytes(MIB);
    let sentMessages = 0;
    const sending = (async () => {
      for (; sentMessages < total / MIB; sentMessages++) await connection.sendWsMessage(1, message);
    })();
    // Wait until the client has stopped granting: no new WindowUpdate for this stream for a while.
    let lastGranted = -1;
    while (connection.clientWindow(1).granted !== lastGranted) {
      lastGranted = connection.clientWindow(1).granted;
      await Bun.sleep(150);
    }
    // Without the client's restraint all 48 MiB would have gone through by now (loopback takes them in well under 150 ms).
    expect(sentMessages).toBeLessThan(total / MIB);
    expect(connection.clientWindow(1).granted).toBeLessThan(total - MIB);
    // The connection window is not used up: the client returned to it all but this stream's window
    // (and what its grant batching holds, under a quarter of 16 MiB), so other streams keep going.
    expect(connection.clientWindow(0).sent - connection.clientWindow(0).granted).toBeLessThanOrEqual(MIB + 4 * MIB);
    connection.send({ type: 'StreamClose', data: { stream_id: 1 } });
    await running!.reporter.until(() => running!.reporter.requests.length === 1);
    void sending.catch(() => {});
  });
});
