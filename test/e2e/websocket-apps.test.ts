/**
 * WebSocket passthrough with real applications: the server and `expose http` as processes, and the
 * local services people put behind a tunnel, each in its own process: the `ws` package's echo server
 * (on Node, where `ws` is the real package), Bun's native WebSocket server, and a Socket.IO server.
 * Visitors are Bun's WebSocket client, a hand-written handshake on a TCP socket, and socket.io-client.
 */
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Fetch, io, NodeWebSocket, type Socket } from 'socket.io-client';
import { cleanUp } from '../client/process.ts';
import { freePort } from '../helpers/free-port.ts';
import {
  type E2EClient,
  type E2EServer,
  type E2EUser,
  FIXTURES,
  type LocalService,
  MIB,
  rawUpgrade,
  startClient,
  startE2EServer,
  startLocalService,
  stopLocalServices,
  tunnelInfo,
  until,
  VisitorSocket,
  withTimeout,
} from './harness.ts';

/** Moving 16 MiB through the tunnel and back on a loaded two-core machine. */
const BIG_TIMEOUT_MS = 30_000;
/** A value only this run knows, so a reason or payload seen can only have come from this run. */
const TOKEN = crypto.randomUUID().slice(0, 8);
const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

let server: E2EServer;
let user: E2EUser;
/** Echo services by name, and the `expose http` in front of each (subdomain = name). */
const echoes: Record<string, { service: LocalService; client: E2EClient }> = {};
let socketIo: { service: LocalService; client: E2EClient };
let refusing: ReturnType<typeof Bun.serve>;
let refusingClient: E2EClient;
let downClient: E2EClient;

const ECHO_SERVICES = [
  { name: 'ws-echo', title: 'the `ws` package echo server (Node)', argv: ['node', join(FIXTURES, 'ws-echo-server.mjs')] },
  { name: 'bun-echo', title: "Bun's native WebSocket server", argv: [process.execPath, join(FIXTURES, 'bun-echo-server.ts')] },
] as const;

beforeAll(async () => {
  // Tunnel domain `localhost`, so that socket.io-client can use the public URL itself (see below).
  server = await startE2EServer({ EXPOSE_TUNNEL_DOMAIN: 'localhost' });
  user = await server.newUser();
  refusing = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response('no WebSocket here', { status: 404 }) });
  const downPort = await freePort();
  const startEcho = async ({ name, argv }: (typeof ECHO_SERVICES)[number]) => {
    const service = await startLocalService([...argv]);
    echoes[name] = { service, client: await startClient(server, user.key, name, service.port) };
  };
  const startSocketIo = async () => {
    const service = await startLocalService(['node', join(FIXTURES, 'socketio-server.cjs')]);
    socketIo = { service, client: await startClient(server, user.key, 'chat', service.port) };
  };
  await Promise.all([
    ...ECHO_SERVICES.map(startEcho),
    startSocketIo(),
    startClient(server, user.key, 'refuses', refusing.port!).then((client) => (refusingClient = client)),
    startClient(server, user.key, 'down', downPort).then((client) => (downClient = client)),
  ]);
}, 60_000);

afterAll(async () => {
  cleanUp();
  await stopLocalServices();
  refusing?.stop(true);
  expect(await server?.stop()).toBe('');
});

describe.each(ECHO_SERVICES)('through a tunnel to $title', ({ name }) => {
  const service = () => echoes[name]!.service;

  it('echoes text as text and binary as binary, and the local server sees the path, the query and the rewritten Host', async () => {
    const visitor = await VisitorSocket.open(server, name, `/chat/room-1?token=${TOKEN}`);
    const connected = await service().log.event('connection', { path: `/chat/room-1?token=${TOKEN}` });
    // The default Host rewrite: the local server sees its own address, as `expose http PORT` names it.
    expect(connected.host).toBe(`localhost:${service().port}`);

    expect(await visitor.roundTrip(`héllo ✓ ${TOKEN}`)).toBe(`héllo ✓ ${TOKEN}`);
    const bytes = new Uint8Array(randomBytes(1000));
    const echoed = await visitor.roundTrip(bytes);
    expect(echoed).toBeInstanceOf(Uint8Array);
    expect(echoed).toEqual(bytes);
    // A binary message that happens to be valid UTF-8 stays binary.
    expect(await visitor.roundTrip(new TextEncoder().encode('looks like text'))).toEqual(new TextEncoder().encode('looks like text'));
    expect(await visitor.roundTrip('')).toBe('');
    visitor.socket.close();
    await visitor.closed;
  });

  it(
    'carries a 16 MiB message whole to the local server and back',
    async () => {
      const visitor = await VisitorSocket.open(server, name, '/big');
      const big = new Uint8Array(randomBytes(16 * MIB));
      const digest = sha256(big);
      const echoed = await visitor.roundTrip(big, BIG_TIMEOUT_MS);
      // The local server got it whole (one message, same bytes)...
      expect(await service().log.event('big', { sha256: digest })).toMatchObject({ bytes: 16 * MIB });
      // ...and its echo came back whole.
      expect(echoed).toBeInstanceOf(Uint8Array);
      expect((echoed as Uint8Array).byteLength).toBe(16 * MIB);
      expect(sha256(echoed as Uint8Array)).toBe(digest);
      visitor.socket.close();
      await visitor.closed;
    },
    BIG_TIMEOUT_MS,
  );

  it('delivers 1,000 small messages sent back to back, every one, in order', async () => {
    const visitor = await VisitorSocket.open(server, name, '/many');
    const sent = Array.from({ length: 1000 }, (_, i) => `message ${i} ${TOKEN}`);
    for (const message of sent) visitor.socket.send(message);
    const received: string[] = [];
    for (let i = 0; i < sent.length; i++) received.push(await visitor.nextText(`echo ${i}`));
    expect(received).toEqual(sent);
    visitor.socket.close();
    await visitor.closed;
  });

  it("relays the visitor's ping to the local server and the local server's ping to the visitor", async () => {
    const visitor = await VisitorSocket.open(server, name, '/ping');
    const outbound = `visitor-ping-${TOKEN}`;
    (visitor.socket as unknown as { ping(data: string): void }).ping(outbound);
    // The local server's own WebSocket saw the visitor's ping, with its payload.
    await service().log.event('ping', { data: outbound });
    // And the visitor got a pong carrying it (ours or the relayed one: both carry the payload).
    expect(await visitor.pongs.next('a pong')).toBe(outbound);

    const inbound = `local-ping-${TOKEN}`;
    visitor.socket.send(`ping ${inbound}`);
    expect(await visitor.pings.next("the local server's ping")).toBe(inbound);
    await service().log.event('pong', { data: inbound });
    visitor.socket.close();
    await visitor.closed;
  });

  it.each([1000, 1001, 4000])('the local server closing with %i and a reason closes the visitor with the same code and reason', async (code) => {
    const visitor = await VisitorSocket.open(server, name, '/closed-by-local');
    const reason = `local-${code}-${TOKEN}`;
    visitor.socket.send(`close ${code} ${reason}`);
    expect(await withTimeout(visitor.closed, 'the visitor to see the close')).toEqual({ code, reason });
  });

  it.each([1000, 1001, 4000])('the visitor closing with %i and a reason closes the local socket with the same code and reason', async (code) => {
    const visitor = await VisitorSocket.open(server, name, '/closed-by-visitor');
    const reason = `visitor-${code}-${TOKEN}`;
    visitor.socket.close(code, reason);
    await service().log.event('close', { code, reason });
    // The close handshake completes: the visitor gets the local server's answer.
    expect((await withTimeout(visitor.closed, "the visitor's socket to close")).code).toBe(code);
  });

  it('a visitor who vanishes without a close frame closes the local socket with 1001', async () => {
    const visitor = await VisitorSocket.open(server, name, '/vanish');
    expect(await visitor.roundTrip(`still here ${TOKEN}`)).toBe(`still here ${TOKEN}`);
    const before = service().log.lines.length;
    (visitor.socket as unknown as { terminate(): void }).terminate();
    const closed = await service().log.event('close', {}, undefined, before);
    expect(closed.code).toBe(1001);
  });
});

/**
 * socket.io-client as a Bun program would use it, on the tunnel's public URL `http://chat.localhost:PORT`.
 * Bun's own fetch and WebSocket resolve `*.localhost` to this machine (as browsers do), but its
 * node:dns / node:http do not (getaddrinfo reads /etc/hosts, which has no wildcard). The client's
 * default polling transport in Bun and Node is xmlhttprequest-ssl on node:http, so it can neither
 * resolve the name nor send a Host header of ours (XHR forbids setting Host; `extraHeaders: {host}`
 * is dropped and the request lands on the API, 404). So the polling-then-upgrade test keeps the
 * default order (polling first, then the upgrade probe) with the library's other two transports:
 * `Fetch` (polling on fetch) and `NodeWebSocket` (its default WebSocket transport, on the `ws` API).
 */
describe('Socket.IO through a tunnel (the docs\' server echoing `message` as `response`)', () => {
  const url = () => `http://chat.localhost:${server.port}`;

  async function connected(socket: Socket): Promise<void> {
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        socket.once('connect', () => resolve());
        socket.once('connect_error', reject);
      }),
      'socket.io to connect',
    );
  }

  async function echoes(socket: Socket): Promise<void> {
    for (const message of [`hello ${TOKEN}`, { nested: [1, 2, 3], token: TOKEN }, Buffer.from(`bytes ${TOKEN}`)]) {
      const response = withTimeout(new Promise((resolve) => socket.once('response', resolve)), 'the response');
      socket.emit('message', message);
      expect(await response).toEqual(message);
    }
  }

  it('connects in WebSocket-only mode and echoes messages', async () => {
    const before = socketIo.service.log.lines.length;
    const socket = io(url(), { transports: ['websocket'], reconnection: false });
    try {
      await connected(socket);
      expect(socket.io.engine.transport.name).toBe('websocket');
      expect((await socketIo.service.log.event('connection', {}, undefined, before)).transport).toBe('websocket');
      await echoes(socket);
    } finally {
      socket.close();
    }
  });

  it('starts with HTTP long-polling through the tunnel, upgrades to a WebSocket, and echoes messages', async () => {
    const before = socketIo.service.log.lines.length;
    const clientBefore = socketIo.client.stdout.lines.length;
    const socket = io(url(), { transports: [Fetch, NodeWebSocket], reconnection: false });
    const upgraded = new Promise<string>((resolve) => socket.io.on('open', () => socket.io.engine.once('upgrade', (transport: { name: string }) => resolve(transport.name))));
    try {
      await connected(socket);
      // The local server saw a polling connection first: plain HTTP requests through the tunnel.
      expect((await socketIo.service.log.event('connection', {}, undefined, before)).transport).toBe('polling');
      await socketIo.client.stdout.event('request', { method: 'GET', path: '/socket.io/', status: 200 }, undefined, clientBefore);
      expect(await withTimeout(upgraded, 'the upgrade to a WebSocket')).toBe('websocket');
      await socketIo.service.log.event('upgrade', { transport: 'websocket' }, undefined, before);
      expect(socket.io.engine.transport.name).toBe('websocket');
      await echoes(socket);
    } finally {
      socket.close();
    }
    // The upgraded socket was a passed-through WebSocket (logged by the client once it ended).
    await socketIo.client.stdout.event('request', { path: '/socket.io/', status: 101, websocket: true }, undefined, clientBefore);
  });
});

describe('a refused upgrade', () => {
  it('answers 502 tunnel_error when the local server answers the upgrade with 404', async () => {
    const { status, headers, socket } = await rawUpgrade(server, 'refuses', '/socket');
    socket.destroy();
    expect(status).toBe(502);
    expect(headers.get('x-expose-error')).toBe('tunnel_error');
    const logged = await refusingClient.stdout.event('request', { path: '/socket', websocket: true });
    expect(logged.status).toBe(502);
  });

  it('answers 502 tunnel_error when the local server is down', async () => {
    const { status, headers, socket } = await rawUpgrade(server, 'down', '/socket');
    socket.destroy();
    expect(status).toBe(502);
    expect(headers.get('x-expose-error')).toBe('tunnel_error');
    const logged = await downClient.stdout.event('request', { path: '/socket', websocket: true });
    expect(logged.status).toBe(502);
    expect(String(logged.error)).toMatch(/refused/i);
  });

  it("Bun's WebSocket client sees the refusal as a failed connection, not a hang", async () => {
    const visitor = new VisitorSocket(server, 'down', '/socket');
    await expect(withTimeout(visitor.opened, 'the refusal')).rejects.toThrow(/closed before it opened/);
  });
});

describe('GET /api/v1/tunnels', () => {
  it('counts a WebSocket as an active stream while it is open, and its message bytes both ways', async () => {
    // Sockets of earlier tests end once the close handshake has crossed the tunnel both ways.
    await until(async () => (await tunnelInfo(server, user.key, 'ws-echo')).active_streams === 0, 'no stream left on the tunnel');
    const before = await tunnelInfo(server, user.key, 'ws-echo');
    const visitor = await VisitorSocket.open(server, 'ws-echo', '/counted');
    const open = await tunnelInfo(server, user.key, 'ws-echo');
    expect(open.active_streams).toBe(1);
    expect(open.request_count).toBe(before.request_count + 1);

    const text = 'x'.repeat(1000);
    const binary = new Uint8Array(randomBytes(3000));
    await visitor.roundTrip(text);
    await visitor.roundTrip(binary);
    const during = await tunnelInfo(server, user.key, 'ws-echo');
    // Message payload bytes: 4,000 from the visitor, 4,000 echoed to them.
    expect(during.bytes_in - before.bytes_in).toBe(4000);
    expect(during.bytes_out - before.bytes_out).toBe(4000);
    expect(during.active_streams).toBe(1);

    visitor.socket.close(1000);
    await visitor.closed;
    await until(async () => (await tunnelInfo(server, user.key, 'ws-echo')).active_streams === 0, 'active_streams to drop to 0');
  });
});
