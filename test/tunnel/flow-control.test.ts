/** Flow control (the flow_control feature): windows kept both ways, overruns punished, one stalled visitor stalls only its stream; and life without the feature. */
import { afterEach, describe, expect, it } from 'bun:test';
import { createConnection } from 'node:net';
import { FrameKind, MAX_FRAME_PAYLOAD_BYTES } from '../../src/tunnel/protocol.ts';
import { rawHttp, type ScriptedClient, startTunnelServer, type TunnelServerOptions, type TunnelTestServer } from '../helpers/tunnel.ts';

const randomBytes = (n: number) => {
  const out = new Uint8Array(n);
  for (let at = 0; at < n; at += 65536) crypto.getRandomValues(out.subarray(at, Math.min(n, at + 65536)));
  return out;
};

let server: TunnelTestServer | undefined;
afterEach(async () => {
  if (server) {
    expect(server.errorLogs()).toEqual([]);
    await server.stop();
  }
  server = undefined;
});

async function setUp(tunnel: TunnelServerOptions['tunnel'], features = ['flow_control']): Promise<{ server: TunnelTestServer; client: ScriptedClient }> {
  server = await startTunnelServer({ tunnel });
  const user = await server.newUser();
  const { client } = await server.tunnel(user.key, 'flow', { features });
  return { server, client };
}

describe('flow control, server to client (request bodies)', () => {
  it('never sends more than the stream window of request body before the client grants more', async () => {
    const WINDOW = 100_000;
    const { server, client } = await setUp({ streamWindowBytes: WINDOW, connectionWindowBytes: 10 * WINDOW });
    expect(client.flowControl).toBe(true);
    client.autoGrant = false;
    client.serve(async (request) => (request.path === '/barrier' ? { status: 200, body: 'barrier' } : { status: 200, body: `${(await request.body()).byteLength}` }));
    const upload = randomBytes(1_000_000);
    const answer = server.visit('flow.expose.test', '/upload', { method: 'POST', body: upload });
    const stream = await client.stream((open) => open.path === '/upload');
    let rounds = 0;
    while (stream.finCount === 0) {
      await client.until(() => stream.ungranted >= WINDOW || stream.finCount > 0, `the window to fill (round ${rounds})`);
      if (stream.finCount > 0) break;
      // A full round trip on another stream: had the server more to send without a grant, it would have sent it by now.
      expect(await (await server.visit('flow.expose.test', '/barrier')).text()).toBe('barrier');
      expect(stream.ungranted).toBe(WINDOW);
      // Grant part of it back, as a client whose local service reads slowly would.
      client.grant(stream, 40_000);
      rounds++;
    }
    client.grant(stream, stream.ungranted);
    expect(await (await answer).text()).toBe('1000000');
    expect(stream.maxUngranted).toBeLessThanOrEqual(WINDOW);
    expect(rounds).toBeGreaterThanOrEqual(20);
    expect(stream.frames.filter((f) => f.fin)).toHaveLength(1);
    for (const frame of stream.frames) expect(frame.bytes).toBeLessThanOrEqual(MAX_FRAME_PAYLOAD_BYTES);
    expect(Buffer.from(await client.bodyOf(stream)).equals(Buffer.from(upload))).toBe(true);
  });

  it('never sends more than the connection window across streams before a connection grant', async () => {
    const CONNECTION_WINDOW = 150_000;
    const { server, client } = await setUp({ streamWindowBytes: 1_000_000, connectionWindowBytes: CONNECTION_WINDOW });
    client.autoGrant = false;
    client.serve(async (request) => ({ status: 200, body: `${(await request.body()).byteLength}` }));
    const answers = [1, 2, 3].map((i) => server.visit('flow.expose.test', `/up/${i}`, { method: 'POST', body: randomBytes(200_000) }));
    const streams = await Promise.all([1, 2, 3].map((i) => client.stream((o) => o.path === `/up/${i}`)));
    const total = () => streams.reduce((n, s) => n + s.ungranted, 0);
    for (let round = 0; streams.some((s) => s.finCount === 0); round++) {
      await client.until(() => total() >= CONNECTION_WINDOW || streams.every((s) => s.finCount > 0), `the connection window to fill (round ${round})`);
      if (streams.every((s) => s.finCount > 0)) break;
      for (const stream of streams) {
        if (stream.ungranted === 0) continue;
        const bytes = stream.ungranted;
        client.grant(stream, bytes);
      }
    }
    expect((await Promise.all(answers.map(async (a) => (await a).text())))).toEqual(['200000', '200000', '200000']);
    expect(client.maxConnectionUngranted).toBeLessThanOrEqual(CONNECTION_WINDOW);
  });
});

describe('flow control, client to server (response bodies)', () => {
  it('relays a response much larger than the window, granting it back as the visitor reads', async () => {
    const { server, client } = await setUp({ streamWindowBytes: 64 * 1024, connectionWindowBytes: 256 * 1024 });
    client.setConnectionWindow(256 * 1024);
    const download = randomBytes(3_000_000);
    client.serve(() => ({ status: 200, body: download }));
    const res = await server.visit('flow.expose.test', '/big');
    expect(Buffer.from(await res.arrayBuffer()).equals(Buffer.from(download))).toBe(true);
    const updates = client.all('WindowUpdate');
    expect(updates.some((u) => u.stream_id !== 0)).toBe(true);
    expect(updates.some((u) => u.stream_id === 0)).toBe(true);
  });

  it('closes with 4002 a client that sends response DATA beyond its stream window', async () => {
    const { server, client } = await setUp({ streamWindowBytes: 16 * 1024 });
    client.serve((request) => {
      client.send({ type: 'StreamResponse', data: { stream_id: request.stream.id, status: 200, headers: [] } });
      client.sendFrame(request.stream.id, FrameKind.DATA, 0, new Uint8Array(MAX_FRAME_PAYLOAD_BYTES));
      return undefined;
    });
    // A raw visitor: fetch would retry a GET whose connection closed without an answer.
    const visitor = rawHttp(server.port, 'GET /overrun HTTP/1.1\r\nHost: flow.expose.test\r\n\r\n').catch((e: Error) => e);
    expect((await client.waitClosed()).code).toBe(4002);
    // The response was under way: the visitor's connection is cut, never given a complete answer.
    expect(await visitor).toBeInstanceOf(Error);
    expect((await server.api('GET', '/health')).status).toBe(200);
  });

  it('closes with 4002 a client that sends response DATA beyond the connection window', async () => {
    const { server, client } = await setUp({ streamWindowBytes: 1024 * 1024, connectionWindowBytes: 16 * 1024 });
    client.serve((request) => {
      client.send({ type: 'StreamResponse', data: { stream_id: request.stream.id, status: 200, headers: [] } });
      client.sendFrame(request.stream.id, FrameKind.DATA, 0, new Uint8Array(MAX_FRAME_PAYLOAD_BYTES));
      return undefined;
    });
    void server.visit('flow.expose.test', '/overrun').then(async (r) => r.text()).catch(() => {});
    expect((await client.waitClosed()).code).toBe(4002);
  });

  it('lets a visitor who reads nothing stall only their own stream while others on the tunnel keep going', async () => {
    const { server, client } = await setUp({ streamWindowBytes: 64 * 1024, connectionWindowBytes: 1024 * 1024 });
    client.setConnectionWindow(1024 * 1024);
    const HUGE = 64 * 1024 * 1024;
    const huge = new Uint8Array(HUGE);
    client.serve((request) => (request.path === '/stall' ? { status: 200, body: huge } : { status: 200, body: `quick ${request.path}` }));
    // A visitor that sends its request and never reads a byte of the answer.
    const stalled = createConnection({ host: '127.0.0.1', port: server.port });
    stalled.on('error', () => {});
    stalled.pause();
    stalled.write('GET /stall HTTP/1.1\r\nHost: flow.expose.test\r\n\r\n');
    const stream = await client.stream((o) => o.path === '/stall');
    // Once the sockets' buffers are full the client runs out of window and stops sending.
    await client.until(() => stream.sent > 0 && stream.sendCredit === 0 || undefined, 'the stalled stream to run out of window', 5000);
    for (let i = 0; i < 10; i++) expect(await (await server.visit('flow.expose.test', `/q/${i}`)).text()).toBe(`quick /q/${i}`);
    expect(stream.sent).toBeLessThan(HUGE);
    stalled.destroy();
    await client.until(() => stream.closedByServer, 'StreamClose once the stalled visitor leaves', 5000);
  });
});

describe('without flow control', () => {
  it('relays large bodies both ways and sends no WindowUpdate', async () => {
    const { server, client } = await setUp({}, []);
    expect(client.flowControl).toBe(false);
    const download = randomBytes(2_000_000);
    client.serve(async (request) => {
      const body = await request.body();
      return { status: 200, headers: [['x-got', String(body.byteLength)]], body: download };
    });
    const upload = randomBytes(2_000_000);
    const res = await server.visit('flow.expose.test', '/both', { method: 'POST', body: upload });
    expect(res.headers.get('x-got')).toBe('2000000');
    expect(Buffer.from(await res.arrayBuffer()).equals(Buffer.from(download))).toBe(true);
    expect(client.all('WindowUpdate')).toEqual([]);
    expect(client.all('TunnelReady')[0]!.window).toBeUndefined();
  });

  it('ignores WindowUpdate from a client that did not ask for the feature', async () => {
    const { server, client } = await setUp({}, []);
    client.send({ type: 'WindowUpdate', data: { stream_id: 0, bytes: 12345 } });
    client.send({ type: 'WindowUpdate', data: { stream_id: 99, bytes: 1 } });
    client.serve(() => ({ status: 200, body: 'fine' }));
    expect(await (await server.visit('flow.expose.test', '/x')).text()).toBe('fine');
    expect(client.isOpen).toBe(true);
  });
});
