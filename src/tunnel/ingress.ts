/**
 * Visitor HTTP requests on a tunnel host: find the tunnel, open a stream, stream the request body to
 * the client and the response back, with none of the API's hooks in the way (no body cap, no JSON,
 * no API headers, no rate limit) and no idle timeout of ours. One log line per request.
 */
import type { Server } from 'bun';
import type { ClientAddresses } from '../http/client-address.ts';
import { cidrContains, type Cidr, parseIp } from '../lib/client-ip.ts';
import type { Logger } from '../lib/logger.ts';
import { pathAndQuery } from '../lib/request-target.ts';
import { announcesWholeBody, connectionOptions, type HeaderPair, isHopByHopHeader, MAX_FRAME_PAYLOAD_BYTES, STREAM_ERROR_ORIGIN_TIMEOUT } from './protocol.ts';
import type { MemoryTunnelRegistry } from './registry.ts';
import type { LiveTunnel } from './session.ts';
import type { TunnelSettings } from './settings.ts';
import type { HttpStream, StreamFailure } from './stream.ts';
import { visitorError } from './visitor-errors.ts';
import type { VisitorSocketData, WsStream } from './ws-stream.ts';

const FORWARDED = new Set(['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host']);
const EMPTY = new Uint8Array(0);
const NANOSECONDS_PER_MS = 1e6;

/** Resolves after the I/O of the current event-loop turn has been handled. */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** A WebSocket opening handshake (RFC 6455 §4.1): GET with `Upgrade: websocket`. */
function isWebSocketUpgrade(request: Request): boolean {
  return request.method === 'GET' && request.headers.get('upgrade')?.toLowerCase() === 'websocket';
}

/** Statuses whose answer never has a body (1xx never gets this far: see `relay`). */
const isBodylessStatus = (status: number) => status === 204 || status === 304;

/**
 * A `Set-Cookie` with `Domain` set to the tunnel domain or a parent of it would reach every tunnel and
 * the API: it becomes host-only (the attribute dropped). A cookie for the tunnel's own host passes.
 */
export function confineCookie(setCookie: string, tunnelDomain: string): string {
  const parts = setCookie.split(';');
  const kept = parts.filter((part, i) => {
    if (i === 0) return true;
    const eq = part.indexOf('=');
    if (eq === -1 || part.slice(0, eq).trim().toLowerCase() !== 'domain') return true;
    const domain = part.slice(eq + 1).trim().toLowerCase().replace(/^\./, '').replace(/\.$/, '');
    return !(domain === tunnelDomain || tunnelDomain.endsWith(`.${domain}`));
  });
  return kept.length === parts.length ? setCookie : kept.join(';');
}

/** Relays visitor requests into tunnels. */
export class Ingress {
  constructor(
    private readonly registry: MemoryTunnelRegistry<LiveTunnel>,
    private readonly settings: TunnelSettings,
    private readonly addresses: ClientAddresses,
    private readonly socketAddress: (request: Request) => string | undefined,
    private readonly trustedProxies: readonly Cidr[],
    private readonly logger: Logger,
    private readonly now: () => number,
  ) {}

  /**
   * Answers a visitor's request to `subdomain` (null: a tunnel-domain host that names no valid tunnel);
   * undefined once a WebSocket upgrade has been taken over.
   */
  async handle(request: Request, server: Server<unknown>, subdomain: string | null): Promise<Response | undefined> {
    const startNs = Bun.nanoseconds();
    // Long downloads, server-sent events and slow uploads are the visitor's business: no idle cut.
    server.timeout(request, 0);
    const found = subdomain === null ? undefined : this.registry.lookup(subdomain, this.now());
    if (found === undefined || found.state === 'free') return this.answered(request, startNs, visitorError(request, 'tunnel_not_found'));
    if (found.state === 'held') return this.answered(request, startNs, visitorError(request, 'tunnel_reconnecting'));
    const tunnel = found.tunnel;
    tunnel.requestCount++;
    if (isWebSocketUpgrade(request)) return this.upgrade(request, server, tunnel, startNs);
    const headers = this.requestHeaders(request);
    let stream: HttpStream | undefined;
    try {
      stream = tunnel.session.openStream({ method: request.method, path: pathAndQuery(request.url), headers });
    } catch (error) {
      // A header or path the protocol cannot carry (the encoder refuses it rather than break the tunnel).
      if (error instanceof RangeError) return this.answered(request, startNs, visitorError(request, 'bad_request'), tunnel);
      throw error;
    }
    if (!stream) return this.answered(request, startNs, visitorError(request, 'tunnel_busy'), tunnel);
    const opened = stream;
    request.signal.addEventListener('abort', () => tunnel.session.visitorGone(opened), { once: true });
    void this.pumpBody(request, tunnel, opened);

    const answer = await this.clientAnswer(opened.head, () => tunnel.session.visitorGone(opened));
    if (!answer.ok) return this.answered(request, startNs, visitorError(request, answer.error), tunnel);
    const head = answer.value;
    // A StreamResponse is the final answer, which a 1xx can never be (101 included: this request asked
    // for no upgrade); Response() would throw on it. The visitor gets 502 and the client StreamClose.
    if (head.status < 200) {
      tunnel.session.visitorGone(opened);
      return this.answered(request, startNs, visitorError(request, 'tunnel_error'), tunnel);
    }
    const responseHeaders = this.responseHeaders(head.headers);
    const bodyless = request.method === 'HEAD' || isBodylessStatus(head.status);
    let whole: Uint8Array | undefined;
    if (bodyless) opened.discardBody();
    else if (announcesWholeBody(responseHeaders.get('content-length'))) {
      // A small answer's body comes right behind its head, in one frame (the client's rule): one turn
      // of the event loop lets it land, so it goes out whole, with its Content-Length, in one write.
      if (!opened.bodyArrived) await nextTurn();
      // Bun gives a byte body without a Content-Type `application/octet-stream` (a stream, none): an
      // answer the local service sent untyped is taken whole only when it is empty.
      whole = opened.takeWhole(responseHeaders.has('content-type') ? MAX_FRAME_PAYLOAD_BYTES : 0);
    }
    void opened.done.then(() => this.log(request, startNs, head.status, tunnel, opened));
    return new Response(bodyless ? null : (whole ?? opened.body), { status: head.status, headers: responseHeaders });
  }

  /**
   * A visitor's WebSocket upgrade: WsUpgrade to the client, and once it has opened the local socket
   * (WsUpgradeAccepted) the visitor's upgrade completes with the subprotocol the local server chose.
   * A refusal (StreamError) is the visitor's 502; no answer within the tunnel timeout, 504.
   */
  private async upgrade(request: Request, server: Server<unknown>, tunnel: LiveTunnel, startNs: number): Promise<Response | undefined> {
    let socket: WsStream | undefined;
    try {
      socket = tunnel.session.openWebSocket({ path: pathAndQuery(request.url), headers: this.requestHeaders(request) });
    } catch (error) {
      if (error instanceof RangeError) return this.answered(request, startNs, visitorError(request, 'bad_request'), tunnel);
      throw error;
    }
    if (!socket) return this.answered(request, startNs, visitorError(request, 'tunnel_busy'), tunnel);
    const opened = socket;
    const gone = () => tunnel.session.visitorGone(opened);
    request.signal.addEventListener('abort', gone, { once: true });
    const answer = await this.clientAnswer(opened.accepted, gone);
    if (!answer.ok) return this.answered(request, startNs, visitorError(request, answer.error), tunnel);
    const protocol = answer.value;
    request.signal.removeEventListener('abort', gone);
    const data: VisitorSocketData = { kind: 'visitor', stream: opened };
    const upgraded = (server as Server<VisitorSocketData>).upgrade(request, {
      data,
      headers: protocol === '' ? undefined : { 'Sec-WebSocket-Protocol': protocol },
    });
    if (!upgraded) {
      tunnel.session.visitorGone(opened);
      return this.answered(request, startNs, visitorError(request, 'bad_request'), tunnel);
    }
    this.log(request, startNs, 101, tunnel, undefined);
    return undefined;
  }

  /**
   * The client's answer on a stream (StreamResponse, WsUpgradeAccepted), or the visitor's error: 504
   * when EXPOSE_TUNNEL_TIMEOUT passes first (then `giveUp` tells the client) or the client reports
   * `origin_timeout`, 502 for any other StreamError or a stream that ended.
   */
  private async clientAnswer<T>(answer: Promise<T>, giveUp: () => void): Promise<{ ok: true; value: T } | { ok: false; error: 'tunnel_timeout' | 'tunnel_error' }> {
    const TIMEOUT = Symbol('timeout');
    let timer: Timer | undefined;
    try {
      const value = await Promise.race([answer, new Promise<typeof TIMEOUT>((resolve) => (timer = setTimeout(() => resolve(TIMEOUT), this.settings.responseTimeoutMs)))]);
      if (value !== TIMEOUT) return { ok: true, value: value as T };
      giveUp();
      return { ok: false, error: 'tunnel_timeout' };
    } catch (failure) {
      const originTimeout = (failure as StreamFailure).kind === 'error' && (failure as { error: string }).error === STREAM_ERROR_ORIGIN_TIMEOUT;
      return { ok: false, error: originTimeout ? 'tunnel_timeout' : 'tunnel_error' };
    } finally {
      clearTimeout(timer);
    }
  }

  /** The visitor's headers for the client: hop-by-hop dropped, X-Forwarded-* set (kept only from a trusted proxy). */
  private requestHeaders(request: Request): HeaderPair[] {
    const listed = connectionOptions([request.headers.get('connection') ?? '']);
    const peer = this.socketAddress(request);
    const peerAddress = peer === undefined ? undefined : parseIp(peer);
    const trustedPeer = peerAddress !== undefined && this.trustedProxies.some((cidr) => cidrContains(cidr, peerAddress));
    const pairs: HeaderPair[] = [];
    for (const [name, value] of request.headers) {
      if (isHopByHopHeader(name) || listed.has(name)) continue;
      if (FORWARDED.has(name) && !(trustedPeer && name !== 'x-forwarded-for')) continue;
      if (name === 'content-length') {
        // The length of the body as relayed: none when Bun hands over no body (it drops a GET's), and a
        // single value where Bun joined repeats it found equal ("5, 5"): no client is given a framing that
        // disagrees with the DATA it receives.
        if (request.body !== null) pairs.push([name, value.split(',')[0]!.trim()]);
        continue;
      }
      pairs.push([name, value]);
    }
    const clientIp = this.addresses.of(request, peer).ip;
    if (clientIp !== undefined) pairs.push(['x-forwarded-for', clientIp]);
    // The scheme this request came in on: Bun's url starts with https:// on a TLS listener.
    if (!(trustedPeer && request.headers.has('x-forwarded-proto'))) pairs.push(['x-forwarded-proto', request.url.startsWith('https:') ? 'https' : 'http']);
    if (!(trustedPeer && request.headers.has('x-forwarded-host'))) pairs.push(['x-forwarded-host', request.headers.get('host') ?? '']);
    return pairs;
  }

  private responseHeaders(pairs: readonly [string, string][]): Headers {
    const headers = new Headers();
    const listed = connectionOptions(pairs.filter(([name]) => name.toLowerCase() === 'connection').map(([, value]) => value));
    for (const [rawName, value] of pairs) {
      const name = rawName.toLowerCase();
      if (isHopByHopHeader(name) || listed.has(name)) continue;
      headers.append(name, name === 'set-cookie' ? confineCookie(value, this.settings.domain) : value);
    }
    return headers;
  }

  /** Streams the visitor's request body to the client, then its FIN. A visitor who goes away mid-body ends the stream. */
  private async pumpBody(request: Request, tunnel: LiveTunnel, stream: HttpStream): Promise<void> {
    const { session } = tunnel;
    try {
      if (request.body) {
        for await (const chunk of request.body as unknown as AsyncIterable<Uint8Array>) {
          tunnel.bytesIn += chunk.byteLength;
          if (!(await session.writeBody(stream, chunk, false))) return;
        }
      }
      await session.writeBody(stream, EMPTY, true);
    } catch {
      session.visitorGone(stream);
    }
  }

  private answered(request: Request, startNs: number, response: Response, tunnel?: LiveTunnel): Response {
    this.log(request, startNs, response.status, tunnel, undefined);
    return response;
  }

  private log(request: Request, startNs: number, status: number, tunnel: LiveTunnel | undefined, stream: HttpStream | undefined): void {
    const path = pathAndQuery(request.url);
    const queryAt = path.indexOf('?');
    this.logger.info('tunnel request', {
      method: request.method,
      host: request.headers.get('host'),
      // Without the query string: it may hold a visitor's secret.
      path: queryAt === -1 ? path : path.slice(0, queryAt),
      status,
      bytes: stream?.bytesOut ?? 0,
      duration_ms: Math.round(((Bun.nanoseconds() - startNs) / NANOSECONDS_PER_MS) * 100) / 100,
      tunnel_id: tunnel?.id ?? null,
    });
  }
}
