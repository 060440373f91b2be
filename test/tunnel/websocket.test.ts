/**
 * WebSocket passthrough, server side: a visitor's upgrade becomes WsUpgrade, the client's
 * WsUpgradeAccepted completes it, messages cross as ≤64 KiB WS_TEXT/WS_BINARY pieces both ways,
 * close codes are relayed, and the tunnel's end closes every passed-through socket. The client here
 * is scripted; test/e2e has the real one against real local servers.
 */
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { decodeWsClose, encodeFrame, encodeWsClose, FLAG_FIN, FrameKind, MAX_FRAME_PAYLOAD_BYTES } from '../../src/tunnel/protocol.ts';
import { type ScriptedClient, startTunnelServer, type TestUser, type TunnelTestServer } from '../helpers/tunnel.ts';

let server: TunnelTestServer;
let user: TestUser;
let names = 0;
beforeAll(async () => {
  server = await startTunnelServer({ fileDb: true, tunnel: { responseTimeoutMs: 300 } });
  user = await server.newUser();
});
afterAll(async () => {
  expect(server.errorLogs()).toEqual([]);
  await server.stop();
});

type WsFrame = { streamId: number; frameKind: number; flags: number; payload: Uint8Array };

/** A tunnel whose scripted client accepts every WsUpgrade (with `protocol`) and can read WS frames. */
async function wsTunnel(options: { protocol?: string } = {}) {
  const name = `ws-${++names}`;
  const { client } = await server.tunnel(user.key, name, { features: ['flow_control'] });
  const accepted: number[] = [];
  const acceptAll = async () => {
    for (;;) {
      const upgrade = await client.next('WsUpgrade', () => true, 60_000).catch(() => undefined);
      if (!upgrade) return;
      accepted.push(upgrade.stream_id);
      client.send({ type: 'WsUpgradeAccepted', data: { stream_id: upgrade.stream_id, ...(options.protocol ? { protocol: options.protocol } : {}) } });
    }
  };
  void acceptAll();
  return { name, client, accepted };
}

/** WS frames the client has received on `streamId`, of `kinds`. */
function framesOf(client: ScriptedClient, streamId: number, kinds: number[]): WsFrame[] {
  return client.received.filter((r): r is Extract<typeof r, { kind: 'frame' }> => r.kind === 'frame' && r.streamId === streamId && kinds.includes(r.frameKind));
}

/** Waits for the next whole message (pieces up to FIN) on `streamId` after `skip` pieces; grants its bytes back. */
async function nextMessage(client: ScriptedClient, streamId: number, skip: number): Promise<{ kind: number; bytes: Uint8Array; pieces: WsFrame[] }> {
  const pieces = await client.until(() => {
    const all = framesOf(client, streamId, [FrameKind.WS_TEXT, FrameKind.WS_BINARY]).slice(skip);
    const end = all.findIndex((f) => (f.flags & FLAG_FIN) !== 0);
    if (end !== -1) return all.slice(0, end + 1);
    // Grant as pieces come, as a real client does once it hands them to the local socket.
    const ungranted = all.reduce((n, f) => n + f.payload.byteLength, 0);
    if (ungranted > 0 && client.flowControl) grant(client, streamId, ungranted, all);
    return undefined;
  }, 'a whole WebSocket message', 10_000);
  if (client.flowControl) grant(client, streamId, pieces.reduce((n, f) => n + f.payload.byteLength, 0), pieces);
  return { kind: pieces[0]!.frameKind, bytes: Buffer.concat(pieces.map((p) => p.payload)), pieces };
}

const grantedFrames = new WeakSet<object>();
function grant(client: ScriptedClient, streamId: number, _bytes: number, frames: WsFrame[]): void {
  let bytes = 0;
  for (const frame of frames) {
    if (grantedFrames.has(frame)) continue;
    grantedFrames.add(frame);
    bytes += frame.payload.byteLength;
  }
  if (bytes === 0) return;
  client.send({ type: 'WindowUpdate', data: { stream_id: streamId, bytes } });
  client.send({ type: 'WindowUpdate', data: { stream_id: 0, bytes } });
}

/** Polls `check` until it holds: visitor-side events do not wake the scripted client's waiters. */
async function eventually(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(5);
  }
}

/** A visitor WebSocket to tunnel `name`. */
function visit(name: string, path = '/socket', protocols?: string[]): WebSocket {
  const ws = new WebSocket(`ws://127.0.0.1:${server.port}${path}`, { headers: { host: `${name}.expose.test` }, ...(protocols ? { protocols } : {}) } as never);
  ws.binaryType = 'arraybuffer';
  return ws;
}

function opened(ws: WebSocket): Promise<void> {
  return new Promise((resolve, reject) => {
    ws.addEventListener('open', () => resolve(), { once: true });
    ws.addEventListener('error', () => reject(new Error('visitor socket failed')), { once: true });
  });
}

function closedWith(ws: WebSocket): Promise<{ code: number; reason: string; atMs: number }> {
  return new Promise((resolve) => ws.addEventListener('close', (e) => resolve({ code: e.code, reason: e.reason, atMs: performance.now() }), { once: true }));
}

function messages(ws: WebSocket): (string | ArrayBuffer)[] {
  const got: (string | ArrayBuffer)[] = [];
  ws.addEventListener('message', (e) => got.push(e.data as string | ArrayBuffer));
  return got;
}

describe('a visitor WebSocket through a tunnel', () => {
  it('becomes WsUpgrade with its path and query, its subprotocols and no hop-by-hop headers, and opens with the chosen subprotocol', async () => {
    const { name, client } = await wsTunnel({ protocol: 'chat.v2' });
    const ws = visit(name, '/live?room=7', ['chat.v1', 'chat.v2']);
    await opened(ws);
    expect(ws.protocol).toBe('chat.v2');
    const upgrade = client.all('WsUpgrade').at(-1)!;
    expect(upgrade.path).toBe('/live?room=7');
    const names = upgrade.headers.map(([n]) => n.toLowerCase());
    expect(names).toContain('sec-websocket-protocol');
    expect(names).toContain('x-forwarded-for');
    expect(names).not.toContain('connection');
    expect(names).not.toContain('upgrade');
    ws.close();
  });

  it('relays text and binary both ways, a 16 MiB message whole, and 1,000 small messages in order', async () => {
    const { name, client } = await wsTunnel();
    const ws = visit(name);
    const got = messages(ws);
    await opened(ws);
    const streamId = client.all('WsUpgrade').at(-1)!.stream_id;

    ws.send('hello');
    const text = await nextMessage(client, streamId, 0);
    expect(text.kind).toBe(FrameKind.WS_TEXT);
    expect(new TextDecoder().decode(text.bytes)).toBe('hello');

    const big = new Uint8Array(16 * 1024 * 1024);
    for (let i = 0; i < big.length; i += 4096) big[i] = i % 251;
    ws.send(big);
    const binary = await nextMessage(client, streamId, 1);
    expect(binary.kind).toBe(FrameKind.WS_BINARY);
    expect(binary.pieces.every((p) => p.payload.byteLength <= MAX_FRAME_PAYLOAD_BYTES)).toBe(true);
    expect(binary.pieces.filter((p) => (p.flags & FLAG_FIN) !== 0)).toHaveLength(1);
    expect(Buffer.compare(binary.bytes, big)).toBe(0);

    // Client → visitor: the same 16 MiB back in pieces, then 1,000 numbered texts.
    for (let offset = 0; offset < big.length; offset += MAX_FRAME_PAYLOAD_BYTES) {
      const last = offset + MAX_FRAME_PAYLOAD_BYTES >= big.length;
      client.sendFrame(streamId, FrameKind.WS_BINARY, last ? FLAG_FIN : 0, big.subarray(offset, offset + MAX_FRAME_PAYLOAD_BYTES));
      // Keep to the window as a real client must: wait for the server's grants.
      if (client.flowControl && (offset / MAX_FRAME_PAYLOAD_BYTES) % 8 === 7) {
        const before = client.all('WindowUpdate').length;
        await client.until(() => client.all('WindowUpdate').length > before || undefined, 'a grant');
      }
    }
    for (let i = 0; i < 1000; i++) client.sendFrame(streamId, FrameKind.WS_TEXT, FLAG_FIN, new TextEncoder().encode(`m${i}`));
    await eventually(() => got.length >= 1001, 'every message at the visitor');
    expect(Buffer.compare(Buffer.from(got[0] as ArrayBuffer), big)).toBe(0);
    expect(got.slice(1)).toEqual(Array.from({ length: 1000 }, (_, i) => `m${i}`));
    ws.close();
  });

  it('relays close codes and reasons both ways: the visitor closing 1000, the local side closing 4000', async () => {
    const { name, client } = await wsTunnel();
    const first = visit(name);
    await opened(first);
    const firstId = client.all('WsUpgrade').at(-1)!.stream_id;
    first.close(1000, 'bye');
    const close = await client.until(() => framesOf(client, firstId, [FrameKind.WS_CLOSE])[0], 'WS_CLOSE');
    expect(decodeWsClose(close.payload)).toEqual({ ok: true, code: 1000, reason: 'bye' });

    const second = visit(name);
    const ended = closedWith(second);
    await opened(second);
    const secondId = client.all('WsUpgrade').at(-1)!.stream_id;
    client.sendFrame(secondId, FrameKind.WS_CLOSE, FLAG_FIN, encodeWsClose(4000, 'app says no'));
    expect(await ended).toMatchObject({ code: 4000, reason: 'app says no' });
  });

  it('tells the client 1001 when the visitor vanishes without a close', async () => {
    const { name, client } = await wsTunnel();
    const ws = visit(name);
    await opened(ws);
    const streamId = client.all('WsUpgrade').at(-1)!.stream_id;
    (ws as unknown as { terminate(): void }).terminate();
    const close = await client.until(() => framesOf(client, streamId, [FrameKind.WS_CLOSE])[0], 'WS_CLOSE');
    expect(decodeWsClose(close.payload)).toMatchObject({ ok: true, code: 1001 });
  });

  it('answers 502 when the local server refuses the upgrade, 504 when the client never answers or reports origin_timeout', async () => {
    const name = `ws-${++names}`;
    const { client } = await server.tunnel(user.key, name);
    const refuse = (async () => {
      const upgrade = await client.next('WsUpgrade');
      client.send({ type: 'StreamError', data: { stream_id: upgrade.stream_id, error: 'WebSocket upgrade refused' } });
    })();
    const refused = await server.visit(`${name}.expose.test`, '/socket', {
      headers: { upgrade: 'websocket', connection: 'Upgrade', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-version': '13', accept: 'application/json' },
    });
    await refuse;
    expect(refused.status).toBe(502);
    expect(refused.headers.get('x-expose-error')).toBe('tunnel_error');

    const ignored = await server.visit(`${name}.expose.test`, '/socket', {
      headers: { upgrade: 'websocket', connection: 'Upgrade', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-version': '13', accept: 'application/json' },
    });
    expect(ignored.status).toBe(504);
    const stale = client.all('WsUpgrade').at(-1)!.stream_id;
    expect(await client.next('StreamClose', (c) => c.stream_id === stale)).toEqual({ stream_id: stale });

    // The local server never answering the upgrade, as the client saw it: 504 as for HTTP.
    const slow = (async () => {
      const upgrade = await client.next('WsUpgrade', (u) => u.stream_id > stale);
      client.send({ type: 'StreamError', data: { stream_id: upgrade.stream_id, error: 'origin_timeout' } });
    })();
    const timedOut = await server.visit(`${name}.expose.test`, '/socket', {
      headers: { upgrade: 'websocket', connection: 'Upgrade', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-version': '13', accept: 'application/json' },
    });
    await slow;
    expect(timedOut.status).toBe(504);
    expect(timedOut.headers.get('x-expose-error')).toBe('tunnel_timeout');
  });

  it('counts WebSocket payload in bytes_in, bytes_out and active_streams', async () => {
    const { name, client } = await wsTunnel();
    const ws = visit(name);
    const got = messages(ws);
    await opened(ws);
    const streamId = client.all('WsUpgrade').at(-1)!.stream_id;
    ws.send('x'.repeat(1000));
    await nextMessage(client, streamId, 0);
    client.sendFrame(streamId, FrameKind.WS_TEXT, FLAG_FIN, new TextEncoder().encode('y'.repeat(500)));
    await eventually(() => got.length === 1, 'the reply');
    const [tunnel] = ((await (await server.api('GET', '/api/v1/tunnels', { credential: user.key })).json()) as Array<Record<string, unknown>>).filter((t) => t.subdomain === name);
    expect(tunnel).toMatchObject({ bytes_in: 1000, bytes_out: 500, request_count: 1, active_streams: 1 });
    ws.close();
  });
});

describe('the end of a tunnel', () => {
  const cases: Array<[string, (client: ScriptedClient, tunnelId: string) => Promise<unknown> | void]> = [
    ['a client drop', (client) => client.terminate()],
    ['DELETE /api/v1/tunnels/{id}', (_client, id) => server.api('DELETE', `/api/v1/tunnels/${id}`, { credential: user.token })],
  ];
  for (const [what, act] of cases) {
    it(`closes every passed-through socket with 1001 within 1 s: ${what}`, async () => {
      const { name, client } = await wsTunnel();
      const tunnelId = (client.all('TunnelReady')[0] ?? { tunnel_id: '' }).tunnel_id ?? '';
      const sockets = [visit(name), visit(name), visit(name)];
      await Promise.all(sockets.map(opened));
      const ends = sockets.map(closedWith);
      const started = performance.now();
      await act(client, tunnelId);
      for (const end of await Promise.all(ends)) {
        expect(end.code).toBe(1001);
        expect(end.atMs - started).toBeLessThan(1000);
      }
    });
  }

  it('closes every passed-through socket with 1001 within 1 s when the key is revoked', async () => {
    const own = await server.newKey(user.token);
    const name = `ws-${++names}`;
    const { client } = await server.tunnel(own.key, name);
    void (async () => {
      for (;;) {
        const upgrade = await client.next('WsUpgrade', () => true, 60_000).catch(() => undefined);
        if (!upgrade) return;
        client.send({ type: 'WsUpgradeAccepted', data: { stream_id: upgrade.stream_id } });
      }
    })();
    const ws = visit(name);
    await opened(ws);
    const ended = closedWith(ws);
    const started = performance.now();
    expect((await server.api('DELETE', `/api/v1/api-keys/${own.keyId}`, { credential: user.token })).status).toBe(204);
    const end = await ended;
    expect(end.code).toBe(1001);
    expect(end.atMs - started).toBeLessThan(1000);
  });
});

describe('flow control of WebSocket payload', () => {
  it('never sends the client more than the window of WS payload before a grant', async () => {
    const { name, client } = await wsTunnel();
    const ws = visit(name);
    await opened(ws);
    const streamId = client.all('WsUpgrade').at(-1)!.stream_id;
    for (let i = 0; i < 40; i++) ws.send(new Uint8Array(100 * 1024));
    const received = () => framesOf(client, streamId, [FrameKind.WS_BINARY]).reduce((n, f) => n + f.payload.byteLength, 0);
    // Nothing is granted: the server fills one window, then must stop there however long it waits.
    await client.until(() => received() >= client.window || undefined, 'a full window');
    await Bun.sleep(100);
    expect(received()).toBe(client.window);
    ws.close();
  });

  it('tells the client 1001 and StreamClose at once when the visitor vanishes with a message still waiting for the window', async () => {
    const { name, client } = await wsTunnel();
    const ws = visit(name);
    await opened(ws);
    const streamId = client.all('WsUpgrade').at(-1)!.stream_id;
    const received = () => framesOf(client, streamId, [FrameKind.WS_BINARY, FrameKind.WS_TEXT]).reduce((n, f) => n + f.payload.byteLength, 0);
    // One message uses the whole window, and nothing is granted (the local service is not reading)...
    ws.send(new Uint8Array(client.window));
    await client.until(() => received() >= client.window || undefined, 'a full window');
    // ...so the next one waits in the server, with the visitor's socket still read (not paused).
    ws.send('waiting for a window that never comes');
    // Time for the server to read it: nothing can be observed from here until the visitor leaves.
    await Bun.sleep(100);
    (ws as unknown as { terminate(): void }).terminate();
    // The WS_CLOSE cannot wait behind that message: it would wait for good, and the stream with it.
    const close = await client.until(() => framesOf(client, streamId, [FrameKind.WS_CLOSE])[0], 'WS_CLOSE');
    expect(decodeWsClose(close.payload)).toMatchObject({ ok: true, code: 1001 });
    expect(await client.next('StreamClose', (c) => c.stream_id === streamId)).toEqual({ stream_id: streamId });
    expect(received()).toBe(client.window);
  });
});

describe('server shutdown', () => {
  // Last in the file: it ends every tunnel of the shared server.
  it('closes every passed-through socket with 1001 within 1 s', async () => {
    const { name } = await wsTunnel();
    const sockets = [visit(name), visit(name)];
    await Promise.all(sockets.map(opened));
    const ends = sockets.map(closedWith);
    const started = performance.now();
    server.running.relay.shutdown();
    for (const end of await Promise.all(ends)) {
      expect(end.code).toBe(1001);
      expect(end.atMs - started).toBeLessThan(1000);
    }
  });
});
