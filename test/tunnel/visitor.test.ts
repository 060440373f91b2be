/** What visitors get: methods, paths, bodies in DATA frames, headers both ways, cookies, encodings, errors, disconnects, concurrency. */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'bun:test';
import { confineCookie } from '../../src/tunnel/ingress.ts';
import { MAX_FRAME_PAYLOAD_BYTES } from '../../src/tunnel/protocol.ts';
import {
  DOMAIN,
  headerValues,
  rawHttp,
  type HandlerResult,
  type ScriptedClient,
  type ScriptedRequest,
  startTunnelServer,
  type TunnelTestServer,
} from '../helpers/tunnel.ts';

const HOST = 'myapp.expose.test';
const randomBytes = (n: number) => {
  const out = new Uint8Array(n);
  for (let at = 0; at < n; at += 65536) crypto.getRandomValues(out.subarray(at, Math.min(n, at + 65536)));
  return out;
};

/** The request-frame rules every relayed request must follow: ≤64 KiB payloads, exactly one FIN, on the last frame. */
function expectWellFramed(request: ScriptedRequest): void {
  const frames = request.stream.frames;
  expect(frames.length).toBeGreaterThan(0);
  for (const frame of frames) expect(frame.bytes).toBeLessThanOrEqual(MAX_FRAME_PAYLOAD_BYTES);
  expect(frames.filter((f) => f.fin)).toHaveLength(1);
  expect(frames.at(-1)!.fin).toBe(true);
}

describe('visitor requests through a tunnel', () => {
  let server: TunnelTestServer;
  let client: ScriptedClient;
  let handle: (request: ScriptedRequest) => HandlerResult | Promise<HandlerResult>;
  const seen: ScriptedRequest[] = [];

  beforeAll(async () => {
    server = await startTunnelServer();
    const user = await server.newUser();
    ({ client } = await server.tunnel(user.key, 'myapp'));
    client.serve(async (request) => {
      seen.push(request);
      return handle(request);
    });
  });
  /** Streams in flight on the tunnel, as the tunnels API would report them. */
  const activeStreams = () => {
    const found = server.running.relay.registry.lookup('myapp', Date.now());
    return found.state === 'live' ? found.tunnel.activeStreams : -1;
  };
  beforeEach(() => {
    seen.length = 0;
    handle = () => ({ status: 200, body: 'ok' });
  });
  afterAll(async () => {
    expect(client.handlerErrors).toEqual([]);
    expect(server.errorLogs()).toEqual([]);
    await server.stop();
  });

  for (const method of ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']) {
    it(`relays ${method} with its path and query exactly, and answers with the client's status and body`, async () => {
      handle = async (request) => {
        await request.body();
        return { status: 201, headers: [['x-method', request.method]], body: `${request.method} ${request.path}` };
      };
      const path = '/items/42?sort=desc&filter=a%20b&empty=&flag&plus=a+b&q=%E2%9C%93';
      const body = method === 'GET' || method === 'OPTIONS' ? undefined : `body of ${method}`;
      const res = await server.visit(HOST, path, { method, body });
      expect(res.status).toBe(201);
      expect(res.headers.get('x-method')).toBe(method);
      expect(await res.text()).toBe(`${method} ${path}`);
      const [request] = seen;
      expect(request!.method).toBe(method);
      expect(request!.path).toBe(path);
      expectWellFramed(request!);
      expect(new TextDecoder().decode(await request!.body())).toBe(body ?? '');
    });
  }

  it('sends a body-less GET as exactly one empty DATA frame with FIN', async () => {
    await (await server.visit(HOST, '/plain')).text();
    expect(seen[0]!.stream.frames).toEqual([{ bytes: 0, fin: true }]);
  });

  it('relays HEAD with an empty FIN, and gives the visitor the headers without a body', async () => {
    handle = () => ({ status: 200, headers: [['content-length', '11'], ['x-head', 'yes']] });
    const res = await rawHttp(server.port, `HEAD /head?x=1 HTTP/1.1\r\nHost: ${HOST}\r\nConnection: close\r\n\r\n`);
    expect(res.status).toBe(200);
    expect(res.header('x-head')).toBe('yes');
    expect(res.header('content-length')).toBe('11');
    expect(res.text.endsWith('\r\n\r\n')).toBe(true);
    expect(seen[0]!.method).toBe('HEAD');
    expect(seen[0]!.path).toBe('/head?x=1');
    expect(seen[0]!.stream.frames).toEqual([{ bytes: 0, fin: true }]);
  });

  it('gives an answer whose body arrived with its head a Content-Length, and streams a body still arriving', async () => {
    handle = () => ({ status: 200, headers: [['content-type', 'text/plain'], ['content-length', '11']], body: 'hello whole' });
    const whole = await rawHttp(server.port, `GET /whole HTTP/1.1\r\nHost: ${HOST}\r\nConnection: close\r\n\r\n`);
    expect(whole.header('content-length')).toBe('11');
    expect(whole.header('transfer-encoding')).toBeUndefined();
    expect(whole.body).toBe('hello whole');

    handle = (request) => {
      client.send({ type: 'StreamResponse', data: { stream_id: request.stream.id, status: 200, headers: [['content-type', 'text/plain']] } });
      setTimeout(() => client.sendFrame(request.stream.id, 0, 0, new TextEncoder().encode('late ')), 50);
      setTimeout(() => client.sendFrame(request.stream.id, 0, 1, new TextEncoder().encode('body')), 100);
      return undefined;
    };
    const streamed = await rawHttp(server.port, `GET /late HTTP/1.1\r\nHost: ${HOST}\r\nConnection: close\r\n\r\n`);
    expect(streamed.header('content-length')).toBeUndefined();
    expect(streamed.body).toBe('late body');
  });

  it('never gives an answer a Content-Type its local service did not send, small or empty', async () => {
    // Bun types a byte body application/octet-stream by itself; a browser would then download the page.
    handle = () => ({ status: 200, headers: [['content-length', '5']], body: 'hello' });
    const small = await rawHttp(server.port, `GET /untyped HTTP/1.1\r\nHost: ${HOST}\r\nConnection: close\r\n\r\n`);
    expect(small.body).toBe('hello');
    expect(small.header('content-type')).toBeUndefined();
    handle = () => ({ status: 302, headers: [['location', '/elsewhere'], ['content-length', '0']] });
    const empty = await rawHttp(server.port, `GET /moved HTTP/1.1\r\nHost: ${HOST}\r\nConnection: close\r\n\r\n`);
    expect(empty.status).toBe(302);
    expect(empty.header('content-type')).toBeUndefined();
    expect(empty.header('content-length')).toBe('0');
  });

  it('relays a small answer that came in several frames, whole or not', async () => {
    handle = () => ({ status: 200, headers: [['content-type', 'text/plain'], ['content-length', '12']], body: ['split ', 'answer'] });
    const res = await rawHttp(server.port, `GET /split HTTP/1.1\r\nHost: ${HOST}\r\nConnection: close\r\n\r\n`);
    expect(res.status).toBe(200);
    expect(res.body).toBe('split answer');
    expect(activeStreams()).toBe(0);
  });

  // Bun's Request.url is already normalised: dot segments (also %2e%2e) are resolved, `\` becomes `/`,
  // and ' " < > ` { } | ^ are percent-encoded in places. Those targets cannot reach the client as sent;
  // these are the ones Bun keeps.
  it('keeps unusual but valid request targets as received: double slashes, encoded slashes, odd query characters', async () => {
    handle = (request) => ({ status: 200, body: request.path });
    for (const path of ['//double//slash', '/enc%2Fslash/%7Euser', '/q?a=1&a=2&b=%00&c=%27x%27&d=[1]&e=/?:@!$()*,;', '/~user/file.tar.gz?', '/?']) {
      const res = await rawHttp(server.port, `GET ${path} HTTP/1.1\r\nHost: ${HOST}\r\nConnection: close\r\n\r\n`);
      expect(res.body).toBe(path);
    }
  });

  it('streams a large binary request body in DATA frames of at most 64 KiB with exactly one FIN, byte-identical', async () => {
    const upload = randomBytes(300_000);
    handle = async (request) => ({ status: 200, body: `${(await request.body()).byteLength}` });
    const res = await server.visit(HOST, '/upload', { method: 'POST', body: upload });
    expect(await res.text()).toBe('300000');
    expectWellFramed(seen[0]!);
    expect(Buffer.from(await seen[0]!.body()).equals(Buffer.from(upload))).toBe(true);
  });

  it('tells the client StreamClose when the response completes before the request body (an early 413), so its request never hangs', async () => {
    handle = async (request) => {
      await client.until(() => request.stream.chunks.length > 0 || undefined, 'the first piece of the body');
      return { status: 413, body: 'too big' };
    };
    const release = Promise.withResolvers<void>();
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (sent > 0) await release.promise;
        if (sent++ >= 3) return controller.close();
        controller.enqueue(new Uint8Array(1000));
      },
    });
    const res = await server.visit(HOST, '/early', { method: 'POST', body, duplex: 'half' } as RequestInit & { headers: Record<string, string> });
    expect(res.status).toBe(413);
    expect(await res.text()).toBe('too big');
    const stream = seen[0]!.stream;
    // The request direction never got its FIN: it must be abandoned explicitly.
    await client.until(() => stream.closedByServer || stream.finCount > 0, 'StreamClose (or FIN) for the unfinished request body');
    expect(stream.closedByServer).toBe(true);
    expect(client.all('StreamClose').filter((c) => c.stream_id === stream.id)).toHaveLength(1);
    release.resolve();
  });

  it('sends no StreamClose for a stream that ended normally in both directions', async () => {
    handle = async (request) => ({ status: 200, body: `${(await request.body()).byteLength}` });
    expect(await (await server.visit(HOST, '/normal', { method: 'POST', body: 'abc' })).text()).toBe('3');
    expect(await (await server.visit(HOST, '/normal-get')).text()).toBe('0');
    // A later round trip on a new stream: a StreamClose for the earlier ones would have arrived before its StreamOpen.
    await (await server.visit(HOST, '/later')).text();
    const ids = seen.slice(0, 2).map((r) => r.stream.id);
    expect(client.all('StreamClose').filter((c) => ids.includes(c.stream_id))).toEqual([]);
  });

  it('streams a chunked request body of unknown length the same way', async () => {
    handle = async (request) => ({ status: 200, body: new TextDecoder().decode(await request.body()) });
    const chunks = ['5\r\nhello\r\n', '1\r\n \r\n', '5\r\nworld\r\n', '0\r\n\r\n'].join('');
    const res = await rawHttp(server.port, `POST /chunked HTTP/1.1\r\nHost: ${HOST}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${chunks}`);
    expect(res.body).toBe('hello world');
    expectWellFramed(seen[0]!);
    expect(headerValues(seen[0]!.headers, 'transfer-encoding')).toEqual([]);
  });

  it('relays a large binary response byte-identical', async () => {
    const download = randomBytes(500_000);
    handle = () => ({ status: 200, headers: [['content-type', 'application/octet-stream']], body: download });
    const res = await server.visit(HOST, '/download');
    expect(Buffer.from(await res.arrayBuffer()).equals(Buffer.from(download))).toBe(true);
  });

  it('drops hop-by-hop request headers, including those the Connection header lists, and keeps the rest in order', async () => {
    const res = await rawHttp(
      server.port,
      [
        'POST /hop HTTP/1.1',
        `Host: ${HOST}`,
        'X-First: 1',
        'Connection: keep-alive, X-Secret-Hop, close',
        'X-Secret-Hop: must-not-pass',
        'Keep-Alive: timeout=5',
        'TE: trailers',
        'Trailer: X-Checksum',
        'Upgrade: h2c',
        'Proxy-Authorization: Basic c2VjcmV0',
        'Proxy-Connection: keep-alive',
        'Proxy-Custom: 1',
        'Transfer-Encoding: chunked',
        'X-Repeated: a',
        'X-Repeated: b',
        'X-Last: 2',
        '',
        '3\r\nabc\r\n0\r\n\r\n',
      ].join('\r\n'),
    );
    expect(res.status).toBe(200);
    const names = seen[0]!.headers.map(([name]) => name.toLowerCase());
    for (const dropped of ['connection', 'x-secret-hop', 'keep-alive', 'te', 'trailer', 'upgrade', 'proxy-authorization', 'proxy-connection', 'proxy-custom', 'transfer-encoding']) {
      expect(names).not.toContain(dropped);
    }
    // Bun's Request.headers joins repeated fields (RFC 9110 §5.3 allows it); order is kept.
    expect(headerValues(seen[0]!.headers, 'x-repeated')).toEqual(['a, b']);
    expect(names.indexOf('x-first')).toBeLessThan(names.indexOf('x-last'));
    expect(new TextDecoder().decode(await seen[0]!.body())).toBe('abc');
  });

  it('drops hop-by-hop response headers, including those the Connection header lists', async () => {
    handle = () => ({
      status: 200,
      headers: [
        ['Connection', 'X-Resp-Hop'],
        ['X-Resp-Hop', 'secret'],
        ['Keep-Alive', 'timeout=99'],
        ['Transfer-Encoding', 'gzip, chunked'],
        ['Upgrade', 'websocket'],
        ['Proxy-Authenticate', 'Basic'],
        ['Proxy-Whatever', '1'],
        ['Trailer', 'X-Sum'],
        ['TE', 'trailers'],
        ['X-Kept', 'yes'],
      ],
      body: 'fine',
    });
    const res = await rawHttp(server.port, `GET /hop HTTP/1.1\r\nHost: ${HOST}\r\nConnection: close\r\n\r\n`);
    expect(res.body).toBe('fine');
    expect(res.header('x-kept')).toBe('yes');
    for (const dropped of ['x-resp-hop', 'keep-alive', 'upgrade', 'proxy-authenticate', 'proxy-whatever', 'trailer', 'te']) {
      expect(res.header(dropped)).toBeUndefined();
    }
    // Bun frames the body itself; the client's Transfer-Encoding (naming gzip) must not be passed on.
    expect(headerValues(res.headers, 'transfer-encoding').join(',')).not.toContain('gzip');
  });

  it('sets X-Forwarded-For/Proto/Host and overwrites the ones a visitor sent', async () => {
    await (
      await server.visit(HOST, '/fwd', {
        headers: { 'x-forwarded-for': '6.6.6.6', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'evil.example', 'x-real-ip': '7.7.7.7' },
      })
    ).text();
    const headers = seen[0]!.headers;
    expect(headerValues(headers, 'x-forwarded-for')).toEqual(['127.0.0.1']);
    expect(headerValues(headers, 'x-forwarded-proto')).toEqual(['http']);
    expect(headerValues(headers, 'x-forwarded-host')).toEqual([HOST]);
    expect(headerValues(headers, 'host')).toEqual([HOST]);
  });

  it("sets X-Forwarded-Host to the visitor's Host exactly as received", async () => {
    await (await server.visit('MyApp.Expose.Test.:8080', '/fwd')).text();
    expect(headerValues(seen[0]!.headers, 'x-forwarded-host')).toEqual(['MyApp.Expose.Test.:8080']);
  });

  it('keeps three Set-Cookie headers apart', async () => {
    handle = () => ({
      status: 200,
      headers: [
        ['Set-Cookie', 'a=1; Path=/; HttpOnly'],
        ['Set-Cookie', 'b=2; Expires=Wed, 21 Oct 2035 07:28:00 GMT'],
        ['Set-Cookie', 'c=3, with comma'],
      ],
      body: '',
    });
    const res = await server.visit(HOST, '/cookies');
    expect(res.headers.getSetCookie()).toEqual(['a=1; Path=/; HttpOnly', 'b=2; Expires=Wed, 21 Oct 2035 07:28:00 GMT', 'c=3, with comma']);
  });

  it('makes a Set-Cookie for the tunnel domain or a parent host-only, and keeps one for the tunnel host', async () => {
    const sent = [
      'parent=1; Domain=expose.test; Path=/',
      'dotted=2; domain=.EXPOSE.TEST; Secure',
      'tld=3; Path=/; Domain=test',
      'trailing=4; Domain=expose.test.',
      'spaced=5; Path=/; Domain = expose.test ; HttpOnly',
      'own=6; Domain=myapp.expose.test; Secure',
      'value=Domain=expose.test; Path=/',
    ];
    handle = () => ({ status: 200, headers: sent.map((cookie) => ['Set-Cookie', cookie] as [string, string]), body: '' });
    const cookies = (await server.visit(HOST, '/cookies')).headers.getSetCookie();
    expect(cookies).toEqual(['parent=1; Path=/', 'dotted=2; Secure', 'tld=3; Path=/', 'trailing=4', 'spaced=5; Path=/; HttpOnly', 'own=6; Domain=myapp.expose.test; Secure', 'value=Domain=expose.test; Path=/']);
  });

  it('relays gzip bytes byte-identical with Content-Encoding kept', async () => {
    const plain = 'compress me '.repeat(2000);
    const gzipped = Bun.gzipSync(new TextEncoder().encode(plain));
    handle = () => ({ status: 200, headers: [['content-encoding', 'gzip'], ['content-type', 'text/plain']], body: gzipped });
    const res = await server.visit(HOST, '/gz', { decompress: false, headers: { 'accept-encoding': 'gzip' } } as RequestInit & { headers: Record<string, string> });
    expect(res.headers.get('content-encoding')).toBe('gzip');
    const received = new Uint8Array(await res.arrayBuffer());
    expect(Buffer.from(received).equals(Buffer.from(gzipped))).toBe(true);
    expect(new TextDecoder().decode(Bun.gunzipSync(received))).toBe(plain);
  });

  for (const status of [204, 304]) {
    it(`answers ${status} without a body, even when the client wrongly sends one`, async () => {
      handle = () => ({ status, headers: [['etag', '"v1"']], body: 'should not be relayed' });
      const res = await rawHttp(server.port, `GET /bodyless HTTP/1.1\r\nHost: ${HOST}\r\nConnection: close\r\n\r\n`);
      expect(res.status).toBe(status);
      expect(res.header('etag')).toBe('"v1"');
      expect(res.text.endsWith('\r\n\r\n')).toBe(true);
      expect(res.text).not.toContain('should not');
    });
  }

  it('does not follow a redirect: the visitor gets the 302 and its Location', async () => {
    handle = () => ({ status: 302, headers: [['location', '/elsewhere']], body: '' });
    const res = await server.visit(HOST, '/go', { redirect: 'manual' });
    expect(res.status).toBe(302);
    expect(res.headers.get('location')).toBe('/elsewhere');
    expect(seen).toHaveLength(1);
  });

  it('answers 502 tunnel_error when the client sends StreamError before StreamResponse', async () => {
    handle = () => ({ streamError: 'connection_refused' });
    const res = await server.visit(HOST, '/down', { headers: { accept: 'application/json' } });
    expect(res.status).toBe(502);
    expect(res.headers.get('x-expose-error')).toBe('tunnel_error');
    expect(await res.json()).toEqual({ error: 'tunnel_error', message: expect.any(String) });
  });

  it('answers 504 tunnel_timeout when the client reports StreamError origin_timeout', async () => {
    handle = () => ({ streamError: 'origin_timeout' });
    const res = await server.visit(HOST, '/slow', { headers: { accept: 'application/json' } });
    expect(res.status).toBe(504);
    expect(res.headers.get('x-expose-error')).toBe('tunnel_timeout');
  });

  it('cuts the visitor response when the client sends StreamError after StreamResponse', async () => {
    handle = async (request) => {
      await client.respond(request.stream.id, { status: 200, body: 'partial', noFin: true });
      return undefined;
    };
    const res = await server.visit(HOST, '/cut');
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toBe('partial');
    client.send({ type: 'StreamError', data: { stream_id: seen[0]!.stream.id, error: 'connection_reset' } });
    // The visitor must see a broken response, never a complete one.
    expect(reader.read()).rejects.toThrow();
    await client.until(() => activeStreams() === 0, 'the stream to end');
  });

  it('tells the client StreamClose when the visitor goes away mid-response, and forgets the stream', async () => {
    handle = async (request) => {
      await client.respond(request.stream.id, { status: 200, body: 'first piece ', noFin: true });
      return undefined;
    };
    const abort = new AbortController();
    const res = await server.visit(HOST, '/endless', { signal: abort.signal });
    const reader = res.body!.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toBe('first piece ');
    abort.abort();
    const stream = seen[0]!.stream;
    await client.until(() => stream.closedByServer, 'StreamClose after the visitor left');
    await client.until(() => activeStreams() === 0, 'the stream to be forgotten');
    expect(client.all('StreamClose').filter((c) => c.stream_id === stream.id)).toHaveLength(1);
    // Frames the client still sends for it are dropped; the tunnel keeps working.
    await client.sendBody(stream.id, [new TextEncoder().encode('late')], true);
    handle = () => ({ status: 200, body: 'still fine' });
    expect(await (await server.visit(HOST, '/after')).text()).toBe('still fine');
  });

  it('tells the client StreamClose when the visitor goes away before the response headers', async () => {
    handle = () => undefined;
    const abort = new AbortController();
    const pending = server.visit(HOST, '/never', { signal: abort.signal }).catch((error: Error) => error);
    const stream = await client.stream((open) => open.path === '/never');
    abort.abort();
    expect(await pending).toBeInstanceOf(Error);
    await client.until(() => stream.closedByServer, 'StreamClose after the visitor left');
  });

  it('answers 50 concurrent requests on one tunnel, each with its own body', async () => {
    handle = async (request) => {
      const body = new TextDecoder().decode(await request.body());
      // Hold every answer until all 50 are in flight at once.
      await client.until(() => seen.length >= 50 || undefined, 'all 50 requests to be in flight');
      return { status: 200, headers: [['x-path', request.path]], body: `${request.path}:${body}` };
    };
    const results = await Promise.all(
      Array.from({ length: 50 }, async (_, i) => {
        const res = await server.visit(HOST, `/c/${i}?i=${i}`, { method: 'POST', body: `payload-${i}-${'x'.repeat(i * 100)}` });
        return { i, status: res.status, path: res.headers.get('x-path'), body: await res.text() };
      }),
    );
    for (const { i, status, path, body } of results) {
      expect(status).toBe(200);
      expect(path).toBe(`/c/${i}?i=${i}`);
      expect(body).toBe(`/c/${i}?i=${i}:payload-${i}-${'x'.repeat(i * 100)}`);
    }
    const ids = seen.map((r) => r.stream.id);
    expect(new Set(ids).size).toBe(50);
    for (const id of ids) expect(id % 2).toBe(1);
    await client.until(() => activeStreams() === 0, 'every stream to end');
  });

  it('opens streams with odd ids that only increase', async () => {
    for (let i = 0; i < 5; i++) await (await server.visit(HOST, `/id/${i}`)).text();
    const ids = seen.map((r) => r.stream.id);
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
    for (const id of ids) expect(id % 2).toBe(1);
    expect(Math.max(...[...client.streams.keys()])).toBe(ids.at(-1)!);
  });

  it('logs one line per request with the path but never the query', async () => {
    await (await server.visit(HOST, '/logged/path?token=very-secret-value')).text();
    const line = server.logs.map((l) => JSON.parse(l) as Record<string, unknown>).findLast((l) => l.msg === 'tunnel request')!;
    expect(line).toMatchObject({ method: 'GET', path: '/logged/path', status: 200, tunnel_id: expect.any(String) });
    expect(server.logs.join('\n')).not.toContain('very-secret-value');
  });
});

describe('visitor errors', () => {
  let server: TunnelTestServer;
  let client: ScriptedClient;

  beforeAll(async () => {
    server = await startTunnelServer({ env: { EXPOSE_MAX_STREAMS: '2' }, tunnel: { responseTimeoutMs: 200 } });
    const user = await server.newUser();
    ({ client } = await server.tunnel(user.key, 'errs'));
  });
  afterAll(() => server.stop());

  it('answers 504 tunnel_timeout when no StreamResponse comes within the timeout, and sends the client StreamClose', async () => {
    client.serve(() => undefined);
    const started = performance.now();
    const res = await server.visit('errs.expose.test', '/wait', { headers: { accept: 'application/json' } });
    expect(res.status).toBe(504);
    expect(performance.now() - started).toBeGreaterThanOrEqual(190);
    expect(res.headers.get('x-expose-error')).toBe('tunnel_timeout');
    expect(await res.json()).toEqual({ error: 'tunnel_timeout', message: expect.any(String) });
    const stream = await client.stream((open) => open.path === '/wait');
    await client.until(() => stream.closedByServer, 'StreamClose for the timed-out stream');
    // A StreamResponse arriving late is ignored.
    await client.respond(stream.id, { status: 200, body: 'too late' });
  });

  it('answers 503 tunnel_busy with Retry-After when EXPOSE_MAX_STREAMS are in flight, and serves again once one ends', async () => {
    client.serve(() => undefined);
    const held = [server.visit('errs.expose.test', '/hold/1'), server.visit('errs.expose.test', '/hold/2')];
    const [one, two] = await Promise.all([client.stream((o) => o.path === '/hold/1'), client.stream((o) => o.path === '/hold/2')]);
    const busy = await server.visit('errs.expose.test', '/third', { headers: { accept: 'application/json' } });
    expect(busy.status).toBe(503);
    expect(busy.headers.get('x-expose-error')).toBe('tunnel_busy');
    expect(Number(busy.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await busy.json()).toEqual({ error: 'tunnel_busy', message: expect.any(String) });
    await client.respond(one.id, { status: 200, body: 'one' });
    await client.respond(two.id, { status: 200, body: 'two' });
    expect(await Promise.all(held.map(async (r) => (await r).text()))).toEqual(['one', 'two']);
    client.serve(() => ({ status: 200, body: 'free again' }));
    expect(await (await server.visit('errs.expose.test', '/fourth')).text()).toBe('free again');
  });

  it('answers in HTML unless the visitor asks for JSON, always with X-Expose-Error', async () => {
    for (const accept of [undefined, 'text/html', '*/*', 'text/html,application/xhtml+xml;q=0.9']) {
      const res = await server.visit('nobody.expose.test', '/', { headers: accept ? { accept } : {} });
      expect(res.status).toBe(404);
      expect(res.headers.get('content-type')).toContain('text/html');
      expect(res.headers.get('x-expose-error')).toBe('tunnel_not_found');
      expect(await res.text()).toContain('<html');
    }
    const json = await server.visit('nobody.expose.test', '/', { headers: { accept: 'text/html;q=0.5, application/json' } });
    expect(json.headers.get('content-type')).toContain('application/json');
    expect(await json.json()).toEqual({ error: 'tunnel_not_found', message: expect.any(String) });
  });

  it('never echoes the Host or the path in any error answer', async () => {
    client.serve((request) => (request.path.includes('fail') ? { streamError: 'connection_refused' } : undefined));
    const cases: [string, string][] = [
      ['zq-echo-probe.expose.test', '/<script>alert(1)</script>?q=<img/src=x/onerror=alert(2)>'],
      ['two.zq-echo-probe.expose.test', '/<script>alert(1)</script>'],
      ['<script>alert(1)</script>.expose.test', '/zq-echo-probe'],
      ['zq-echo-probe"><script>alert(1)</script>.expose.test', '/'],
      ['errs.expose.test', '/fail/<script>alert(1)</script>?zq-echo-probe'],
      ['errs.expose.test', '/slow/<script>alert(1)</script>?zq-echo-probe'],
    ];
    for (const [host, path] of cases) {
      for (const accept of ['text/html', 'application/json']) {
        const res = await rawHttp(server.port, `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nAccept: ${accept}\r\nConnection: close\r\n\r\n`);
        expect(res.status, `${host} ${path}`).toBeGreaterThanOrEqual(400);
        expect(res.header('x-expose-error'), `${host} ${path}`).toBeDefined();
        for (const fragment of ['script', 'alert', 'onerror', 'zq-echo-probe', 'errs']) expect(res.body.toLowerCase()).not.toContain(fragment);
      }
    }
  });
});

describe('X-Forwarded-* behind a trusted proxy (EXPOSE_TRUSTED_PROXIES=127.0.0.1/32)', () => {
  let server: TunnelTestServer;
  let client: ScriptedClient;
  const seen: ScriptedRequest[] = [];

  beforeAll(async () => {
    server = await startTunnelServer({ env: { EXPOSE_TRUSTED_PROXIES: '127.0.0.1/32' } });
    const user = await server.newUser();
    ({ client } = await server.tunnel(user.key, 'proxied'));
    client.serve((request) => {
      seen.push(request);
      return { status: 200, body: '' };
    });
  });
  afterAll(() => server.stop());

  it("keeps the proxy's X-Forwarded-Proto and -Host and forwards the client address it vouches for", async () => {
    await (
      await server.visit('proxied.expose.test', '/p', {
        headers: { 'x-forwarded-for': '198.51.100.1, 203.0.113.9', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'proxied.expose.example.com' },
      })
    ).text();
    const headers = seen.at(-1)!.headers;
    expect(headerValues(headers, 'x-forwarded-for')).toEqual(['203.0.113.9']);
    expect(headerValues(headers, 'x-forwarded-proto')).toEqual(['https']);
    expect(headerValues(headers, 'x-forwarded-host')).toEqual(['proxied.expose.example.com']);
  });

  it('fills in what the proxy did not send', async () => {
    await (await server.visit('proxied.expose.test', '/p')).text();
    const headers = seen.at(-1)!.headers;
    expect(headerValues(headers, 'x-forwarded-for')).toEqual(['127.0.0.1']);
    expect(headerValues(headers, 'x-forwarded-proto')).toEqual(['http']);
    expect(headerValues(headers, 'x-forwarded-host')).toEqual(['proxied.expose.test']);
  });

  it('still routes by Host, never by the X-Forwarded-Host of a trusted proxy', async () => {
    const before = seen.length;
    const res = await server.visit(`127.0.0.1:${server.port}`, '/health', { headers: { 'x-forwarded-host': 'proxied.expose.test' } });
    expect(res.status).toBe(200);
    expect(seen.length).toBe(before);
  });
});

describe('confineCookie', () => {
  const table: [string, string][] = [
    ['a=1; Domain=expose.test', 'a=1'],
    ['a=1; Domain=.expose.test; Path=/', 'a=1; Path=/'],
    ['a=1; DOMAIN=EXPOSE.TEST', 'a=1'],
    ['a=1; Domain=test', 'a=1'],
    ['a=1; Domain=myapp.expose.test', 'a=1; Domain=myapp.expose.test'],
    ['a=1; Domain=notexpose.test', 'a=1; Domain=notexpose.test'],
    ['a=1; Domain=pose.test', 'a=1; Domain=pose.test'],
    ['a=1', 'a=1'],
    ['Domain=expose.test', 'Domain=expose.test'],
  ];
  for (const [input, expected] of table) {
    it(`turns ${JSON.stringify(input)} into ${JSON.stringify(expected)}`, () => {
      expect(confineCookie(input, DOMAIN)).toBe(expected);
    });
  }
});

