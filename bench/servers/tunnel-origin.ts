/**
 * The local service of the tunnel benchmarks (bench/suites/tunnel.ts): a plain Bun.serve in its own
 * process. `GET /` answers a small hello, `GET /download?bytes=N` streams N bytes, `POST /upload`
 * reads the body and answers its length, and `/ws` is a WebSocket echo. Prints `READY {"port":N}`.
 */
import { repeatedBody } from '../lib/bytes.ts';

const CHUNK = new Uint8Array(1024 * 1024).fill(120);

const server = Bun.serve({
  hostname: '127.0.0.1',
  port: 0,
  idleTimeout: 0,
  // Bun's default is 128 MiB; T4 uploads up to 1 GiB.
  maxRequestBodySize: 2 ** 40,
  async fetch(request, srv) {
    const url = new URL(request.url);
    if (url.pathname === '/ws') {
      if (srv.upgrade(request, { data: undefined })) return undefined;
      return new Response('upgrade required', { status: 426 });
    }
    if (url.pathname === '/download') {
      const total = Number(url.searchParams.get('bytes') ?? '0');
      const body = repeatedBody(CHUNK, total);
      return new Response(body, { headers: { 'content-type': 'application/octet-stream', 'content-length': String(total) } });
    }
    if (url.pathname === '/upload') {
      let bytes = 0;
      if (request.body) for await (const chunk of request.body as unknown as AsyncIterable<Uint8Array>) bytes += chunk.byteLength;
      return new Response(String(bytes));
    }
    return new Response('Hello, world');
  },
  websocket: {
    message(ws, message) {
      ws.send(message);
    },
  },
});
process.stdout.write(`READY ${JSON.stringify({ port: server.port })}\n`);

export {};
