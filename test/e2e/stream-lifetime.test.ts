/**
 * How long a relayed request lives, with real processes: a quiet server-sent-events response outlives
 * every idle timeout on the way, and a visitor who goes away ends the local request at the origin
 * (before the response, during it, and during the upload).
 */
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { connect, type Socket } from 'node:net';
import { cleanUp } from '../client/process.ts';
import { Arrivals, type E2EClient, type E2EServer, generatedBody, type GeneratedBody, startClient, startE2EServer, withTimeout } from './harness.ts';

/**
 * The SSE response's silence: past Bun.serve's default idle timeout (10 s, which cannot be scaled
 * down), the one the relay must switch off for tunnel traffic. The test lasts about this long.
 */
const SSE_SILENCE_MS = 12_000;
const SSE_TEST_TIMEOUT_MS = SSE_SILENCE_MS + 15_000;
const SUBDOMAIN = 'lifetime';

/** What the origin saw of one request: its signal, and whether its body read failed. */
interface SeenRequest {
  aborted: Promise<void>;
  bodyError: Promise<string>;
  bytesRead: () => number;
}

const seen = new Arrivals<SeenRequest>();
const downloads = new Arrivals<GeneratedBody>();
const encoder = new TextEncoder();
let origin: ReturnType<typeof Bun.serve>;
let server: E2EServer;
let client: E2EClient;

/** Records `req` under the `id` of its query: when its signal aborts, and what reading its body did. */
function record(req: Request): SeenRequest {
  const id = new URL(req.url).searchParams.get('id') ?? '';
  const aborted = new Promise<void>((resolve) => (req.signal.aborted ? resolve() : req.signal.addEventListener('abort', () => resolve(), { once: true })));
  let read = 0;
  let reportBodyError!: (error: string) => void;
  const bodyError = new Promise<string>((resolve) => {
    reportBodyError = resolve;
  });
  const entry: SeenRequest = { aborted, bodyError, bytesRead: () => read };
  if (req.method === 'POST') {
    void (async () => {
      try {
        for await (const chunk of req.body as unknown as AsyncIterable<Uint8Array>) read += chunk.byteLength;
      } catch (error) {
        reportBodyError(String(error));
      }
    })();
  }
  seen.add(id, entry);
  return entry;
}

beforeAll(async () => {
  origin = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    maxRequestBodySize: Number.MAX_SAFE_INTEGER,
    // The origin's own idle cut is off: only the tunnel's timeouts are under test.
    idleTimeout: 0,
    fetch(req) {
      const url = new URL(req.url);
      switch (url.pathname) {
        case '/events': {
          // One event, SSE_SILENCE_MS of nothing at all, one more event, the end.
          let timer: Timer | undefined;
          const stream = new ReadableStream<Uint8Array>({
            start(controller) {
              controller.enqueue(encoder.encode('event: hello\ndata: first\n\n'));
              timer = setTimeout(() => {
                controller.enqueue(encoder.encode('event: hello\ndata: second\n\n'));
                controller.close();
              }, SSE_SILENCE_MS);
            },
            cancel: () => clearTimeout(timer),
          });
          return new Response(stream, { headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-store' } });
        }
        case '/hang': {
          // Never answers by itself: only the visitor leaving ends it.
          const entry = record(req);
          return entry.aborted.then(() => new Response('too late'));
        }
        case '/download': {
          record(req);
          const body = generatedBody(Number.POSITIVE_INFINITY);
          downloads.add(url.searchParams.get('id') ?? '', body);
          return new Response(body.stream);
        }
        case '/upload': {
          const entry = record(req);
          return entry.bodyError.then((error) => new Response(error, { status: 500 }));
        }
        default:
          return new Response('not found', { status: 404 });
      }
    },
  });
  server = await startE2EServer();
  const user = await server.newUser();
  client = await startClient(server, user.key, SUBDOMAIN, origin.port!);
});

afterAll(async () => {
  cleanUp();
  origin?.stop(true);
  expect(await server?.stop()).toBe('');
});

/** A visitor on a raw socket, who can leave at any moment without a word. */
async function rawVisitor(head: string): Promise<{ socket: Socket; firstBytes: Promise<void> }> {
  const socket = connect(server.port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  socket.on('error', () => {});
  const firstBytes = new Promise<void>((resolve) => socket.once('data', () => resolve()));
  socket.write(head);
  return { socket, firstBytes };
}

const requestHead = (method: string, path: string, extra = '') => `${method} ${path} HTTP/1.1\r\nHost: ${SUBDOMAIN}.${server.domain}\r\n${extra}\r\n`;

describe('a long, quiet response', () => {
  it(
    `relays a server-sent-events response that stays silent for ${SSE_SILENCE_MS / 1000} s (past Bun's 10 s idle timeout) to its end, uncut`,
    async () => {
      const res = await server.visit(SUBDOMAIN, '/events', { headers: { accept: 'text/event-stream' } });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('text/event-stream');
      const events: { data: string; atMs: number }[] = [];
      const decoder = new TextDecoder();
      let text = '';
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        text += decoder.decode(chunk, { stream: true });
        for (let end = text.indexOf('\n\n'); end !== -1; end = text.indexOf('\n\n')) {
          const data = /^data: (.*)$/m.exec(text.slice(0, end))?.[1] ?? '';
          events.push({ data, atMs: performance.now() });
          text = text.slice(end + 2);
        }
      }
      // The loop ended because the body ended normally (a cut would have thrown), after both events.
      expect(events.map((event) => event.data)).toEqual(['first', 'second']);
      const silenceMs = events[1]!.atMs - events[0]!.atMs;
      console.log(`[e2e] SSE: second event ${(silenceMs / 1000).toFixed(2)} s after the first, stream ended normally`);
      expect(silenceMs).toBeGreaterThan(SSE_SILENCE_MS - 500);
    },
    SSE_TEST_TIMEOUT_MS,
  );
});

describe('a visitor who goes away', () => {
  it('aborts the local request when they leave before the response headers', async () => {
    const { socket } = await rawVisitor(requestHead('GET', '/hang?id=before-headers'));
    const atOrigin = await seen.when('before-headers');
    socket.destroy();
    await withTimeout(atOrigin.aborted, "the origin request's signal to abort");
    expect(await client.stdout.event('request', { path: '/hang', error: 'visitor went away' })).toMatchObject({ method: 'GET' });
  });

  it('aborts the local response when they leave in the middle of it', async () => {
    const { socket, firstBytes } = await rawVisitor(requestHead('GET', '/download?id=mid-response'));
    await firstBytes;
    const body = await downloads.when('mid-response');
    socket.destroy();
    // The origin's body is cancelled: the client stopped reading it and closed the local connection.
    await withTimeout(body.cancelled, "the origin's response body to be cancelled");
    await withTimeout(seen.get('mid-response').aborted, "the origin request's signal to abort");
    expect(await client.stdout.event('request', { path: '/download', error: 'visitor went away' })).toMatchObject({ method: 'GET' });
  });

  it('aborts the local request when they leave in the middle of the upload', async () => {
    const declaredBytes = 64 * 1024 * 1024;
    const { socket } = await rawVisitor(requestHead('POST', '/upload?id=mid-upload', `Content-Length: ${declaredBytes}\r\n`));
    // A quarter of the body, then gone.
    socket.write(new Uint8Array(declaredBytes / 4));
    const atOrigin = await seen.when('mid-upload');
    socket.destroy();
    const error = await withTimeout(atOrigin.bodyError, "the origin's read of the request body to fail");
    expect(error).not.toBe('');
    expect(atOrigin.bytesRead()).toBeLessThan(declaredBytes);
    await withTimeout(atOrigin.aborted, "the origin request's signal to abort");
  });

  it('leaves the tunnel working for the next visitor', async () => {
    const res = await server.visit(SUBDOMAIN, '/download?id=next');
    const reader = res.body!.getReader();
    const { value } = await reader.read();
    expect(res.status).toBe(200);
    expect(value!.byteLength).toBeGreaterThan(0);
    await reader.cancel();
    expect(client.child.exitCode).toBeNull();
  });
});
