/**
 * The in-bench tunnel client (issue 12: T7, T9): one control WebSocket per tunnel, opened from this
 * process (not a real `expose` process), speaking src/tunnel/protocol.ts: Auth with an API key,
 * RegisterTunnel, Heartbeat answers, and every StreamOpen answered at once with a fixed small
 * `200 ok` (StreamResponse, then one DATA frame with FIN). No flow control is asked for.
 *
 * Run as a script it opens N tunnels and serves them until killed:
 *   bun bench/lib/mux-tunnel.ts <serverPort> <apiKey> <count> <subdomainPrefix>
 * printing `READY {"tunnels":N}` once all are registered.
 */
import { encodeFrame, FLAG_FIN, FrameKind } from '../../src/tunnel/protocol.ts';

const CONNECT_PATH = '/api/v1/tunnel/connect';
const BODY = new TextEncoder().encode('ok');

/** One open tunnel: its socket, how many streams it answered, and a promise of its close (code and performance.now()). */
export interface MuxTunnel {
  ws: WebSocket;
  subdomain: string;
  answered: number;
  /** performance.now() of a GoAway, if one came. */
  goAwayAt?: number;
  closed: Promise<{ code: number; reason: string; at: number }>;
}

/** Opens one tunnel and resolves once TunnelReady arrived. */
export function openMuxTunnel(serverPort: number, apiKey: string, subdomain: string, timeoutMs = 20_000): Promise<MuxTunnel> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${serverPort}${CONNECT_PATH}`);
    ws.binaryType = 'arraybuffer';
    let ready = false;
    let markClosed!: (v: { code: number; reason: string; at: number }) => void;
    const tunnel: MuxTunnel = { ws, subdomain, answered: 0, closed: new Promise((r) => (markClosed = r)) };
    const timer = setTimeout(() => reject(new Error(`tunnel ${subdomain}: no TunnelReady within ${timeoutMs} ms`)), timeoutMs);
    ws.addEventListener('open', () => ws.send(JSON.stringify({ type: 'Auth', data: { api_key: apiKey, client: 'expose-bench-mux/0' } })));
    ws.addEventListener('message', (event) => {
      if (typeof event.data !== 'string') return; // request bodies (DATA frames) are ignored
      const msg = JSON.parse(event.data) as { type: string; data: Record<string, unknown> };
      switch (msg.type) {
        case 'StreamOpen': {
          const id = msg.data.stream_id as number;
          ws.send(JSON.stringify({ type: 'StreamResponse', data: { stream_id: id, status: 200, headers: [['content-type', 'text/plain'], ['content-length', '2']] } }));
          ws.send(encodeFrame(id, FrameKind.DATA, FLAG_FIN, BODY));
          tunnel.answered++;
          break;
        }
        case 'GoAway':
          tunnel.goAwayAt ??= performance.now();
          break;
        case 'Heartbeat':
          ws.send('{"type":"Heartbeat","data":{}}');
          break;
        case 'AuthResult':
          if (msg.data.success !== true) reject(new Error(`tunnel ${subdomain}: auth refused (${String(msg.data.error)})`));
          else ws.send(JSON.stringify({ type: 'RegisterTunnel', data: { subdomain, local_port: 9 } }));
          break;
        case 'TunnelReady':
          ready = true;
          clearTimeout(timer);
          resolve(tunnel);
          break;
        case 'TunnelError':
          reject(new Error(`tunnel ${subdomain}: ${String(msg.data.error)}`));
          break;
      }
    });
    ws.addEventListener('close', (event) => {
      markClosed({ code: event.code, reason: event.reason, at: performance.now() });
      if (!ready) reject(new Error(`tunnel ${subdomain} closed before ready: ${event.code} ${event.reason}`));
    });
  });
}

/** Opens `count` tunnels `${prefix}${i}`, `batch` handshakes at a time. */
export async function openMuxTunnels(serverPort: number, keys: string[] | string, count: number, prefix: string, batch = 50): Promise<MuxTunnel[]> {
  const out: MuxTunnel[] = [];
  for (let start = 0; start < count; start += batch) {
    const opened = await Promise.all(
      Array.from({ length: Math.min(batch, count - start) }, (_, j) => openMuxTunnel(serverPort, typeof keys === 'string' ? keys : keys[start + j]!, `${prefix}${start + j}`)),
    );
    out.push(...opened);
  }
  return out;
}

if (import.meta.main) {
  const [port, apiKey, count, prefix] = Bun.argv.slice(2);
  const tunnels = await openMuxTunnels(Number(port), apiKey!, Number(count), prefix!);
  process.stdout.write(`READY ${JSON.stringify({ tunnels: tunnels.length })}\n`);
  await Promise.all(tunnels.map((t) => t.closed));
  process.stdout.write(`DONE ${JSON.stringify({ answered: tunnels.reduce((s, t) => s + t.answered, 0) })}\n`);
}
