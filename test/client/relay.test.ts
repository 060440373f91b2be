/** The client relays visitors' HTTP requests to a real local origin, against a fake protocol server. */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'bun:test';
import { FrameKind, encodeFrame } from '../../src/tunnel/protocol.ts';
import { FakeTunnelServer, type FakeConnection } from './fake-server.ts';
import { closedPort, patternBytes, startClient, type RunningClient } from './helpers.ts';

const GZIPPED = Bun.gzipSync(new TextEncoder().encode('hello, compressed world '.repeat(100)));

let origin: ReturnType<typeof Bun.serve>;
/** Resolves with the path of a request the origin saw aborted. */
let originAbort: { resolve: (path: string) => void; promise: Promise<string> };
/** Resolves when the origin has a request for /hang waiting. */
let originHanging: { resolve: () => void; promise: Promise<void> };

function deferred<T>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { resolve, promise };
}

beforeAll(() => {
  origin = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    async fetch(req) {
      const url = new URL(req.url);
      switch (url.pathname) {
        case '/echo':
        case '//evil.example/echo':
        case '/evil.example/echo':
          return Response.json({ method: req.method, path: url.pathname + url.search, headers: [...req.headers], bodyBytes: req.body ? (await req.arrayBuffer()).byteLength : null });
        case '/upload':
          // Streams the body straight back: what arrives must be what the visitor sent.
          return new Response(req.body, { headers: { 'content-type': 'application/octet-stream' } });
        case '/cookies': {
          const headers = new Headers();
          headers.append('set-cookie', 'a=1; Path=/; Expires=Wed, 21 Oct 2037 07:28:00 GMT');
          headers.append('set-cookie', 'b=2; HttpOnly');
          headers.append('set-cookie', 'c=3; SameSite=Lax');
          return new Response('ok', { headers });
        }
        case '/gzip':
          return new Response(GZIPPED, { headers: { 'content-encoding': 'gzip', 'content-type': 'text/plain' } });
        case '/redirect':
          return new Response(null, { status: 302, headers: { location: '/elsewhere' } });
        case '/big':
          return new Response(new Uint8Array(100_000).fill(7));
        case '/no-content':
          return new Response(null, { status: 204 });
        case '/too-large':
          // Answers at once, reading none of the upload.
          return new Response('too large', { status: 413 });
        case '/hang':
          req.signal.addEventListener('abort', () => originAbort.resolve(url.pathname));
          originHanging.resolve();
          return new Promise<Response>(() => {});
        default:
          return new Response('not here', { status: 404 });
      }
    },
  });
});
afterAll(() => origin.stop(true));

/** A local service that promises `contentLength` bytes, sends 7 and hangs up. */
const brokenOrigin = (contentLength: number) =>
  Bun.listen({
    hostname: '127.0.0.1',
    port: 0,
    socket: { data: (socket) => void socket.end(`HTTP/1.1 200 OK\r\ncontent-length: ${contentLength}\r\n\r\npartial`) },
  });

let fake: FakeTunnelServer;
let running: RunningClient | undefined;
afterEach(async () => {
  await running?.stop();
  running = undefined;
  fake?.stop();
});

/** A client connected to a fresh fake server, past TunnelReady. */
async function connected(port = origin.port!, options: Parameters<typeof startClient>[2] = {}): Promise<FakeConnection> {
  fake = new FakeTunnelServer();
  running = startClient(fake, port, options);
  const connection = await fake.connection();
  await connection.handshake();
  await running.reporter.until(() => running!.reporter.readies.length === 1);
  return connection;
}

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

describe('the control channel', () => {
  it('sends Auth first, with the key, its name and flow_control, then RegisterTunnel with the local port', async () => {
    fake = new FakeTunnelServer();
    running = startClient(fake, 4321, { subdomain: 'myapp' });
    const connection = await fake.connection();
    await connection.handshake();
    expect(connection.messages[0]).toEqual({ type: 'Auth', data: { api_key: 'exp_k1_test_key', client: 'expose/test', features: ['flow_control'] } });
    expect(connection.messages[1]).toEqual({ type: 'RegisterTunnel', data: { subdomain: 'myapp', local_port: 4321 } });
    await running.reporter.until(() => running!.reporter.readies.length === 1);
    expect(running.reporter.readies[0]).toMatchObject({ subdomain: 'myapp', publicUrl: 'http://myapp.expose.test', flowControl: true });
    expect(running.reporter.states.map((s) => s.state)).toEqual(['Connecting', 'Authenticating', 'Registering', 'Connected']);
  });

  it('asks for a generated name with subdomain null when none was given', async () => {
    const connection = await connected();
    expect(connection.all('RegisterTunnel')[0]!.data).toEqual({ subdomain: null, local_port: origin.port! });
  });
});

describe('relaying a request', () => {
  it('relays a GET with its query, rewriting Host to the local target', async () => {
    const connection = await connected();
    connection.open(1, 'GET', '/echo?q=1&r=two', [['Host', 'brave-otter-3f9a.expose.test'], ['Accept', 'application/json'], ['X-Forwarded-Host', 'brave-otter-3f9a.expose.test']]);
    const result = await connection.result(1);
    if (result.kind !== 'response') throw new Error(`expected a response, got ${JSON.stringify(result)}`);
    expect(result.status).toBe(200);
    const seen = JSON.parse(text(result.body));
    expect(seen.method).toBe('GET');
    expect(seen.path).toBe('/echo?q=1&r=two');
    expect(seen.bodyBytes).toBeNull();
    const headers = new Map<string, string>(seen.headers);
    expect(headers.get('host')).toBe(`127.0.0.1:${origin.port}`);
    expect(headers.get('x-forwarded-host')).toBe('brave-otter-3f9a.expose.test');
    // No compression asked of the origin on the visitor's behalf.
    expect(headers.has('accept-encoding')).toBe(false);
    await running!.reporter.until(() => running!.reporter.requests.length === 1);
    expect(running!.reporter.requests[0]).toMatchObject({ method: 'GET', path: '/echo', status: 200 });
  });

  it('keeps the visitor Host with --host-header preserve', async () => {
    const connection = await connected(origin.port!, { hostHeader: 'preserve' });
    connection.open(1, 'GET', '/echo', [['Host', 'myapp.expose.test']]);
    const result = await connection.result(1);
    if (result.kind !== 'response') throw new Error('no response');
    expect(new Map<string, string>(JSON.parse(text(result.body)).headers).get('host')).toBe('myapp.expose.test');
  });

  it('streams a POST body both ways byte for byte, over many frames', async () => {
    const connection = await connected();
    const body = patternBytes(700 * 1024 + 13);
    connection.open(3, 'POST', '/upload', [['Content-Type', 'application/octet-stream'], ['Content-Length', String(body.byteLength)]], body);
    const result = await connection.result(3);
    if (result.kind !== 'response') throw new Error(`expected a response, got ${JSON.stringify(result)}`);
    expect(result.body.byteLength).toBe(body.byteLength);
    expect(Buffer.from(result.body).equals(Buffer.from(body))).toBe(true);
    // Every frame within the 64 KiB payload limit, one FIN, and it is the last.
    const frames = connection.frames.filter((f) => f.streamId === 3);
    expect(Math.max(...frames.map((f) => f.payload.byteLength))).toBeLessThanOrEqual(64 * 1024);
    expect(frames.filter((f) => f.fin)).toHaveLength(1);
    expect(frames.at(-1)!.fin).toBe(true);
    expect(connection.violations).toEqual([]);
  });

  it('sends a DELETE without a body as bodyless, not as an empty chunked body', async () => {
    const connection = await connected();
    connection.open(5, 'DELETE', '/echo');
    const result = await connection.result(5);
    if (result.kind !== 'response') throw new Error('no response');
    const seen = JSON.parse(text(result.body));
    expect(seen.method).toBe('DELETE');
    expect(new Map<string, string>(seen.headers).has('transfer-encoding')).toBe(false);
  });

  it('keeps three Set-Cookie headers apart', async () => {
    const connection = await connected();
    connection.open(1, 'GET', '/cookies');
    const result = await connection.result(1);
    if (result.kind !== 'response') throw new Error('no response');
    expect(result.headers.filter(([name]) => name.toLowerCase() === 'set-cookie').map(([, value]) => value)).toEqual([
      'a=1; Path=/; Expires=Wed, 21 Oct 2037 07:28:00 GMT',
      'b=2; HttpOnly',
      'c=3; SameSite=Lax',
    ]);
  });

  it('relays gzip bytes untouched, with their Content-Encoding', async () => {
    const connection = await connected();
    connection.open(1, 'GET', '/gzip', [['Accept-Encoding', 'gzip']]);
    const result = await connection.result(1);
    if (result.kind !== 'response') throw new Error('no response');
    expect(new Map(result.headers).get('content-encoding')).toBe('gzip');
    expect(Buffer.from(result.body).equals(Buffer.from(GZIPPED))).toBe(true);
  });

  it('relays a redirect instead of following it', async () => {
    const connection = await connected();
    connection.open(1, 'GET', '/redirect');
    const result = await connection.result(1);
    if (result.kind !== 'response') throw new Error('no response');
    expect(result.status).toBe(302);
    expect(new Map(result.headers).get('location')).toBe('/elsewhere');
  });

  it('ends HEAD and 204 responses with one empty FIN', async () => {
    const connection = await connected();
    connection.open(1, 'HEAD', '/gzip');
    connection.open(3, 'GET', '/no-content');
    for (const [id, status] of [[1, 200], [3, 204]] as const) {
      const result = await connection.result(id);
      if (result.kind !== 'response') throw new Error('no response');
      expect(result.status).toBe(status);
      const frames = connection.frames.filter((f) => f.streamId === id);
      expect(frames).toEqual([{ streamId: id, kind: FrameKind.DATA, fin: true, payload: new Uint8Array(0) }]);
    }
  });

  it('relays an answer sent before the upload was read, and stays well', async () => {
    const connection = await connected();
    connection.send({ type: 'StreamOpen', data: { stream_id: 1, method: 'POST', path: '/too-large', headers: [] } });
    connection.sendData(1, patternBytes(64 * 1024), false);
    const result = await connection.result(1);
    expect(result).toMatchObject({ kind: 'response', status: 413 });
    // The rest of the upload reaches a stream the client has finished with: dropped quietly.
    connection.sendData(1, patternBytes(64 * 1024), true);
    connection.open(3, 'GET', '/echo');
    expect((await connection.result(3)).kind).toBe('response');
    expect(connection.closeInfo).toBeUndefined();
  });

  it('keeps a path that starts with // on the local origin', async () => {
    const connection = await connected();
    connection.open(1, 'GET', '//evil.example/echo');
    const result = await connection.result(1);
    if (result.kind !== 'response') throw new Error(`expected a response, got ${JSON.stringify(result)}`);
    const seen = JSON.parse(text(result.body));
    // Bun's fetch sends a leading "//" as "/" (it collapses leading slashes of the request
    // target), so the origin may see either; what matters is that it is the origin that answers.
    expect(['//evil.example/echo', '/evil.example/echo']).toContain(seen.path);
    expect(new Map<string, string>(seen.headers).get('host')).toBe(`127.0.0.1:${origin.port}`);
  });
});

describe('failures', () => {
  it('answers StreamError "Connection refused" when the local service is down, and keeps running', async () => {
    const connection = await connected(closedPort());
    connection.open(1, 'GET', '/');
    expect(await connection.result(1)).toEqual({ kind: 'error', error: 'Connection refused', status: undefined });
    await running!.reporter.until(() => running!.reporter.requests.length === 1);
    expect(running!.reporter.requests[0]).toMatchObject({ path: '/', status: 502, error: 'Connection refused' });
    // Still serving: the next request on the same connection gets its own answer.
    connection.open(3, 'POST', '/', [], patternBytes(1000));
    expect(await connection.result(3)).toMatchObject({ kind: 'error', error: 'Connection refused' });
    expect(fake.connections).toHaveLength(1);
    expect(connection.closeInfo).toBeUndefined();
  });

  it('answers StreamError when the local response breaks after it started, so the server cuts it', async () => {
    // More than one frame's worth is streamed: the head goes out before the body breaks.
    const broken = brokenOrigin(100_000);
    const connection = await connected(broken.port);
    connection.open(1, 'GET', '/broken');
    const result = await connection.result(1);
    expect(result).toMatchObject({ kind: 'error', status: 200 });
    expect(connection.frames.filter((f) => f.streamId === 1 && f.fin)).toEqual([]);
    await running!.reporter.until(() => running!.reporter.requests.length === 1);
    expect(running!.reporter.requests[0]).toMatchObject({ path: '/broken', status: 200 });
    expect(running!.reporter.requests[0]!.error).toBeDefined();
    broken.stop(true);
  });

  it('answers StreamError before any head when a small announced body breaks, so the visitor gets a 502', async () => {
    // Bodies of at most 64 KiB by Content-Length are read whole before the head goes out.
    const broken = brokenOrigin(100);
    const connection = await connected(broken.port);
    connection.open(1, 'GET', '/broken');
    const result = await connection.result(1);
    expect(result).toMatchObject({ kind: 'error' });
    expect(connection.all('StreamResponse')).toHaveLength(0);
    expect(connection.frames.filter((f) => f.streamId === 1)).toEqual([]);
    await running!.reporter.until(() => running!.reporter.requests.length === 1);
    expect(running!.reporter.requests[0]).toMatchObject({ path: '/broken', status: 502 });
    broken.stop(true);
  });

  it('sends a small answer as its head and one DATA frame carrying the FIN; a larger one streamed, then an empty FIN', async () => {
    const connection = await connected();
    connection.open(1, 'GET', '/cookies');
    expect(await connection.result(1)).toMatchObject({ kind: 'response', status: 200 });
    const small = connection.frames.filter((f) => f.streamId === 1);
    expect(small.map((f) => [f.fin, text(f.payload)])).toEqual([[true, 'ok']]);

    connection.open(3, 'GET', '/big');
    expect(await connection.result(3)).toMatchObject({ kind: 'response', status: 200 });
    const big = connection.frames.filter((f) => f.streamId === 3);
    expect(big.reduce((n, f) => n + f.payload.byteLength, 0)).toBe(100_000);
    expect(big.map((f) => f.fin)).toEqual([...big.slice(1).map(() => false), true]);
    expect(big.at(-1)!.payload.byteLength).toBe(0);
  });

  it('aborts the local request on StreamClose', async () => {
    originAbort = deferred<string>();
    originHanging = deferred<void>();
    const connection = await connected();
    connection.open(7, 'GET', '/hang');
    await originHanging.promise;
    connection.send({ type: 'StreamClose', data: { stream_id: 7 } });
    expect(await originAbort.promise).toBe('/hang');
    await running!.reporter.until(() => running!.reporter.requests.length === 1);
    expect(running!.reporter.requests[0]).toMatchObject({ path: '/hang', status: null, error: 'visitor went away' });
    // Nothing is sent for the stream once the server abandoned it.
    expect(connection.all('StreamResponse')).toHaveLength(0);
  });

  it('drops frames for unknown streams without a word, yet returns their bytes to the connection window', async () => {
    // A 256 KiB connection window: grants go out per 64 KiB consumed.
    const connection = await connected(origin.port!, { connectionWindowBytes: 256 * 1024 });
    const junk = patternBytes(300 * 1024);
    for (let start = 0; start < junk.byteLength; start += 64 * 1024) {
      connection.ws.send(encodeFrame(99, FrameKind.DATA, 0, junk.subarray(start, Math.min(start + 64 * 1024, junk.byteLength))));
    }
    connection.open(1, 'GET', '/echo');
    // The answer to a later request proves the junk before it was read.
    expect((await connection.result(1)).kind).toBe('response');
    const grants = connection.all('WindowUpdate');
    expect(grants.filter((m) => m.data.stream_id === 99)).toHaveLength(0);
    expect(grants.filter((m) => m.data.stream_id === 0).reduce((sum, m) => sum + m.data.bytes, 0)).toBe(4 * 64 * 1024);
    expect(connection.closeInfo).toBeUndefined();
  });
});
