/**
 * The floor of the tunnel benchmarks: the cheapest relay this runtime allows. One Bun process, pinned
 * like the server, that answers each HTTP request with a `fetch` of the same path from the origin
 * (streamed both ways, the proxy options the client uses) and joins each visitor WebSocket to one of
 * its own to the origin. No second process, no multiplexing, no flow control, no checks: whatever
 * this costs, a tunnel (server + client) costs at least as much.
 * Arguments: originPort. Prints `READY {"port":N}`.
 */
import type { ServerWebSocket } from 'bun';

const originPort = Number(Bun.argv[2]);
const origin = `127.0.0.1:${originPort}`;

interface Joined {
  upstream: WebSocket;
  /** Messages from the visitor before the upstream socket opened. */
  early: Array<string | Uint8Array>;
}

const server = Bun.serve<Joined>({
  hostname: '127.0.0.1',
  port: 0,
  idleTimeout: 0,
  maxRequestBodySize: 2 ** 40,
  fetch(request, srv) {
    const start = request.url.indexOf('/', request.url.indexOf('//') + 2);
    const path = start === -1 ? '/' : request.url.slice(start);
    if (request.headers.get('upgrade')?.toLowerCase() === 'websocket') {
      const upstream = new WebSocket(`ws://${origin}${path}`);
      upstream.binaryType = 'nodebuffer';
      return srv.upgrade(request, { data: { upstream, early: [] } }) ? undefined : new Response('upgrade failed', { status: 400 });
    }
    return fetch(`http://${origin}${path}`, {
      method: request.method,
      headers: request.headers,
      body: request.body,
      duplex: 'half',
      redirect: 'manual',
      decompress: false,
      timeout: false,
    } as BunFetchRequestInit);
  },
  websocket: {
    idleTimeout: 0,
    perMessageDeflate: false,
    open(ws: ServerWebSocket<Joined>) {
      const { upstream } = ws.data;
      upstream.addEventListener('open', () => {
        for (const message of ws.data.early.splice(0)) upstream.send(message);
      });
      upstream.addEventListener('message', (event) => ws.send(event.data as string | Uint8Array));
      upstream.addEventListener('close', () => ws.close());
    },
    message(ws, message) {
      const { upstream } = ws.data;
      if (upstream.readyState === WebSocket.OPEN) upstream.send(message);
      else ws.data.early.push(message);
    },
    close(ws) {
      ws.data.upstream.close();
    },
  },
});

process.stdout.write(`READY ${JSON.stringify({ port: server.port })}\n`);
