/**
 * The one listener: owns Bun.serve and sends each request by its Host. Tunnel hosts go to the
 * ingress, which none of the API's hooks touch; everything else goes to the API app, except the
 * tunnel's control channel (`/api/v1/tunnel/connect`), upgraded here to a WebSocket.
 */
import type { Server, ServerWebSocket } from 'bun';
import { createApp, createLimiter, createServices, type AppDeps } from './app.ts';
import { ChangeWatch } from './db/change-watch.ts';
import { ClientAddresses } from './http/client-address.ts';
import { errorResponse, forbidden, unauthorized, type AppError } from './http/errors.ts';
import { systemClock } from './lib/clock.ts';
import { Authenticator } from './modules/auth/authenticator.ts';
import { Ingress } from './tunnel/ingress.ts';
import { routeHost } from './tunnel/host.ts';
import { TunnelRelay } from './tunnel/relay.ts';
import type { ControlSocketData } from './tunnel/session.ts';
import { MAX_WS_MESSAGE_BYTES, type VisitorSocketData } from './tunnel/ws-stream.ts';
import { type TunnelSettings, tunnelSettings } from './tunnel/settings.ts';

/** The control channel's path (exact). */
export const CONNECT_PATH = '/api/v1/tunnel/connect';

/**
 * Largest WebSocket message Bun accepts on any socket of this server: a visitor's passed-through
 * message may be this big (MAX_WS_MESSAGE_BYTES). On a control channel our own checks (64 KiB text,
 * 64 KiB + 6 binary) close far sooner, with the protocol's 4002.
 */
const MAX_WEBSOCKET_MESSAGE_BYTES = MAX_WS_MESSAGE_BYTES;
/**
 * Bun drops a message (send() answers 0) once this much is queued on a socket. The session keeps its
 * own queue and lets Bun hold only a little, so this is a safety margin far above what is ever queued.
 */
const WEBSOCKET_BACKPRESSURE_LIMIT_BYTES = 64 * 1024 * 1024;

/** What a WebSocket on this server carries: a tunnel's control channel, or a visitor's passed-through socket. */
type SocketData = ControlSocketData | VisitorSocketData;

/** What `listen` needs: the app's dependencies, and test overrides for the tunnel's intervals. */
export interface ServerOptions extends Omit<AppDeps, 'socketAddress' | 'tunnels' | 'limiter'> {
  tunnel?: Partial<TunnelSettings>;
}

/** A listening server. */
export interface RunningServer {
  server: Server<SocketData>;
  relay: TunnelRelay;
  app: ReturnType<typeof createApp>;
  port: number;
}

/** Whether `url` (absolute, as Bun gives it) has exactly `path` as its path, with or without a query. */
function hasPath(url: string, path: string): boolean {
  const start = url.indexOf('/', url.indexOf('//') + 2);
  if (start === -1 || !url.startsWith(path, start)) return false;
  const next = url[start + path.length];
  return next === undefined || next === '?';
}

/** Starts listening on `config.host:config.port`. Throws what Bun throws when it cannot. */
export function listen(options: ServerOptions): RunningServer {
  const { config, logger } = options;
  const clock = options.clock ?? systemClock;
  let server: Server<SocketData> | undefined;
  const socketAddress = (request: Request) => server?.requestIP(request)?.address;
  const deps: AppDeps = { ...options, clock, socketAddress };
  const services = createServices(deps);
  const limiter = createLimiter(config, clock);
  const addresses = new ClientAddresses(socketAddress, config.trustedProxies);
  const authenticator = new Authenticator(services.sessions, services.apiKeys);
  const changes = ChangeWatch.of(options.db.sqlite);
  const relay = new TunnelRelay({
    settings: tunnelSettings(config, () => server?.port ?? config.port, options.tunnel),
    authenticate: (credential) => authenticator.authenticate(credential),
    liveKeyIds: (ids) => services.apiKeys.liveKeyIds(ids),
    dataGeneration: () => changes.generation(),
    logger,
    now: () => clock.now(),
  });
  const app = createApp({ ...deps, tunnels: relay, limiter }, services);
  const ingress = new Ingress(relay.registry, relay.settings, addresses, socketAddress, config.trustedProxies, logger, () => clock.now());
  const apiFetch = app.fetch;

  /** The control channel's upgrade: the auth-class bucket, an optional Bearer key, then the WebSocket. */
  const connect = async (request: Request, bunServer: Server<SocketData>): Promise<Response | undefined> => {
    const client = addresses.of(request);
    const headers: Record<string, string> = {};
    const refuse = (error: AppError) => {
      logger.info('tunnel connect refused', { ip: client.ip, status: error.status });
      return errorResponse(error.status, error.code, error.message, { ...headers, ...error.headers });
    };
    const limited = limiter.refusal('auth', client.key, headers);
    if (limited) return refuse(limited);
    if (request.method !== 'GET' || request.headers.get('upgrade')?.toLowerCase() !== 'websocket') {
      return errorResponse(400, 'validation_error', 'This endpoint takes a WebSocket upgrade (the expose client connects here)', headers);
    }
    const authorization = request.headers.get('authorization');
    if (authorization !== null) {
      const principal = await authenticator.fromHeader(authorization);
      if (principal === null) return refuse(unauthorized());
      if (principal.kind !== 'api_key') return refuse(forbidden());
    }
    const session = relay.newSession(client.ip ?? 'unknown');
    if (bunServer.upgrade(request, { data: { kind: 'control', session } })) return undefined;
    session.closed(1006);
    return errorResponse(400, 'validation_error', 'WebSocket upgrade failed', headers);
  };

  server = Bun.serve<SocketData>({
    hostname: config.host,
    port: config.port,
    // A second server on the same port must fail loudly, not share the traffic.
    reusePort: false,
    development: false,
    // Tunnel bodies have no size limit ("unlimited"); the API refuses bodies over 64 KiB itself.
    maxRequestBodySize: Number.MAX_SAFE_INTEGER,
    fetch(request, bunServer) {
      const route = routeHost(request.headers.get('host'), relay.settings.domain);
      if (route.side === 'tunnel') return ingress.handle(request, bunServer, route.subdomain);
      if (hasPath(request.url, CONNECT_PATH)) return connect(request, bunServer);
      return apiFetch(request);
    },
    websocket: {
      maxPayloadLength: MAX_WEBSOCKET_MESSAGE_BYTES,
      backpressureLimit: WEBSOCKET_BACKPRESSURE_LIMIT_BYTES,
      closeOnBackpressureLimit: false,
      // Our own heartbeat (30 s, dead after 45 s) keeps tunnels honest; Bun's idle cut would race it.
      // A visitor's passed-through socket has no idle timeout of ours either: a quiet chat stays open.
      idleTimeout: 0,
      sendPings: false,
      perMessageDeflate: false,
      open: (ws) => (ws.data.kind === 'control' ? ws.data.session.open(ws as ServerWebSocket<ControlSocketData>) : ws.data.stream.open(ws as ServerWebSocket<VisitorSocketData>)),
      message: (ws, message) => (ws.data.kind === 'control' ? ws.data.session.message(message) : ws.data.stream.message(ws as ServerWebSocket<VisitorSocketData>, message)),
      drain: (ws) => (ws.data.kind === 'control' ? ws.data.session.drain() : ws.data.stream.drain()),
      close: (ws, code, reason) => (ws.data.kind === 'control' ? ws.data.session.closed(code) : ws.data.stream.closed(code, reason)),
      ping: (ws, data) => {
        if (ws.data.kind === 'visitor') ws.data.stream.ping(data);
      },
      pong: (ws, data) => {
        if (ws.data.kind === 'visitor') ws.data.stream.pong(data);
      },
    },
  });
  relay.start();
  return { server, relay, app, port: server.port! };
}
