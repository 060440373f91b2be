/**
 * The listeners: owns Bun.serve and sends each request by its Host. Tunnel hosts go to the
 * ingress, which none of the API's hooks touch; everything else goes to the API app, except the
 * tunnel's control channel (`/api/v1/tunnel/connect`), upgraded here to a WebSocket.
 *
 * TLS off (the default): one plain listener on EXPOSE_PORT (`listen`). TLS on (`listenTls`): the same
 * handlers on an HTTPS listener replaced whole at each certificate change (tls/https-listener.ts), and
 * a plain-HTTP listener for ACME challenges and redirects (tls/http-redirect.ts).
 */
import type { Server, ServerWebSocket } from 'bun';
import { createApp, createLimiter, createServices, type AppDeps } from './app.ts';
import { ChangeWatch } from './db/change-watch.ts';
import { ClientAddresses } from './http/client-address.ts';
import { errorResponse, forbidden, unauthorized, type AppError } from './http/errors.ts';
import { systemClock } from './lib/clock.ts';
import { pathStart } from './lib/request-target.ts';
import { Authenticator } from './modules/auth/authenticator.ts';
import { Ingress } from './tunnel/ingress.ts';
import { HostRouter, routeHost } from './tunnel/host.ts';
import { TunnelRelay } from './tunnel/relay.ts';
import type { AcmeTuning } from './tls/acme-source.ts';
import { httpsOrigin, listenHttp } from './tls/http-redirect.ts';
import { HttpsListener, probePort, type GenerationOptions } from './tls/https-listener.ts';
import { tlsEntries } from './tls/sni.ts';
import type { CertificateSource } from './tls/source.ts';
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

/** What `listen` needs: the app's dependencies, and test overrides for the tunnel's intervals (and ACME's). */
export interface ServerOptions extends Omit<AppDeps, 'socketAddress' | 'tunnels' | 'limiter'> {
  tunnel?: Partial<TunnelSettings>;
  acme?: AcmeTuning;
}

/** A listening server (TLS off). */
export interface RunningServer {
  server: Server<SocketData>;
  relay: TunnelRelay;
  app: ReturnType<typeof createApp>;
  port: number;
}

/** Whether `url` (absolute, as Bun gives it) has exactly `path` as its path, with or without a query. */
function hasPath(url: string, path: string): boolean {
  const start = pathStart(url);
  if (start === -1 || !url.startsWith(path, start)) return false;
  const next = url[start + path.length];
  return next === undefined || next === '?';
}

/** A server with TLS on: its HTTPS generations, its plain-HTTP listener and where its certificates come from. */
export interface RunningTlsServer {
  relay: TunnelRelay;
  app: ReturnType<typeof createApp>;
  https: HttpsListener<SocketData>;
  http: Server<undefined>;
  /** The HTTPS port (the setting may be 0: this is the one bound). */
  port: number;
  httpPort: number;
  certificates: CertificateSource;
  /** Stops the certificate source and every listener; without `force`, resolves once their connections have closed. */
  stop(force: boolean): Promise<void>;
}

/** What both kinds of server are made of: the relay, the app, and the handlers every listener shares. */
interface Handlers {
  relay: TunnelRelay;
  app: ReturnType<typeof createApp>;
  serveOptions: GenerationOptions<SocketData>;
}

/**
 * Builds the app, the relay and the request and WebSocket handlers. `peerAddress` reads a request's
 * peer (any Bun server answers for any other's request); `port` is the public port for `public_url`;
 * `publicUrl` its template (undefined: the plain default); `tunnelRegistered` hears of each new tunnel.
 */
function createHandlers(
  options: ServerOptions,
  peerAddress: (request: Request) => string | undefined,
  port: () => number,
  publicUrl: string | undefined,
  tunnelRegistered?: (subdomain: string) => void,
): Handlers {
  const { config, logger } = options;
  /** API requests re-addressed as http:// (see asHttp), to the request the listener received. */
  const received = new WeakMap<Request, Request>();
  const socketAddress = (request: Request) => peerAddress(received.get(request) ?? request);
  /**
   * The app (with `standardHostname` off, see app.ts) finds the path from index 7 of the URL, which
   * on an `https://` URL is the second slash: every route would miss. So an API request that came in
   * over TLS reaches the app under its `http://` URL, in a copy that shares its headers, body and
   * abort signal (about a microsecond; tunnel traffic never takes this path). The copy's peer address
   * is the original's.
   */
  const asHttp = (request: Request): Request => {
    if (!request.url.startsWith('https:')) return request;
    const copy = new Request(`http${request.url.slice(5)}`, request);
    received.set(copy, request);
    return copy;
  };
  const clock = options.clock ?? systemClock;
  const deps: AppDeps = { ...options, clock, socketAddress };
  const services = createServices(deps);
  const limiter = createLimiter(config, clock);
  const addresses = new ClientAddresses(socketAddress, config.trustedProxies);
  const authenticator = new Authenticator(services.sessions, services.apiKeys);
  const changes = ChangeWatch.of(options.db.sqlite);
  const relay = new TunnelRelay({
    settings: tunnelSettings({ ...config, publicUrl }, port, options.tunnel),
    authenticate: async (credential) => authenticator.authenticate(credential),
    liveKeyIds: (ids) => services.apiKeys.liveKeyIds(ids),
    dataGeneration: () => changes.generation(),
    logger,
    now: () => clock.now(),
    tunnelRegistered,
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
      const principal = authenticator.fromHeader(authorization);
      if (principal === null) return refuse(unauthorized());
      if (principal.kind !== 'api_key') return refuse(forbidden());
    }
    const session = relay.newSession(client.ip ?? 'unknown');
    if (bunServer.upgrade(request, { data: { kind: 'control', session } })) return undefined;
    session.closed(1006);
    return errorResponse(400, 'validation_error', 'WebSocket upgrade failed', headers);
  };

  const hosts = new HostRouter(relay.settings.domain);
  const serveOptions: GenerationOptions<SocketData> = {
    development: false,
    // Tunnel bodies have no size limit ("unlimited"); the API refuses bodies over 64 KiB itself.
    maxRequestBodySize: Number.MAX_SAFE_INTEGER,
    fetch(request, bunServer) {
      const route = hosts.route(request.headers.get('host'));
      if (route.side === 'tunnel') return ingress.handle(request, bunServer, route.subdomain);
      if (hasPath(request.url, CONNECT_PATH)) return connect(request, bunServer);
      return apiFetch(asHttp(request));
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
  };
  return { relay, app, serveOptions };
}

/** Starts listening on `config.host:config.port`, plain HTTP (TLS off). Throws what Bun throws when it cannot. */
export function listen(options: ServerOptions): RunningServer {
  const { config } = options;
  let server: Server<SocketData> | undefined;
  const { relay, app, serveOptions } = createHandlers(options, (request) => server?.requestIP(request)?.address, () => server?.port ?? config.port, config.publicUrl);
  server = Bun.serve<SocketData>({
    ...serveOptions,
    hostname: config.host,
    port: config.port,
    // A second server on the same port must fail loudly, not share the traffic.
    reusePort: false,
  });
  relay.start();
  return { server, relay, app, port: server.port! };
}

/**
 * Starts the server with TLS on (EXPOSE_TLS=acme or files): the plain-HTTP listener at once, the
 * HTTPS listener as soon as there is a certificate (at once with files, or a stored one; otherwise
 * when the CA delivers, which is never waited for). Throws what Bun throws when a port cannot be had,
 * and TlsSetupError for certificate files or a CA file that cannot be used.
 */
export async function listenTls(options: ServerOptions): Promise<RunningTlsServer> {
  const { config, logger } = options;
  const httpsPort = probePort(config.host, config.httpsPort);
  let http: Server<undefined> | undefined;
  let https: HttpsListener<SocketData> | undefined;
  let certificates: CertificateSource | undefined;
  const { relay, app, serveOptions } = createHandlers(
    options,
    // Any server answers requestIP for any other's request; the plain listener lives the longest.
    (request) => (http ?? https?.server)?.requestIP(request)?.address,
    () => httpsPort,
    config.publicUrl ?? httpsOrigin('{subdomain}.{domain}', httpsPort),
    (subdomain) => certificates?.tunnelRegistered(subdomain),
  );
  const onChange = () => https?.update();
  // The certificate sources (and acme-client, its HTTP stack and the CA bundle under them) load only
  // with TLS on: importing them made every start with TLS off ~4x slower (measured, P5b).
  if (config.tlsMode === 'files') {
    const { fileCertificates } = await import('./tls/file-source.ts');
    const expectedNames = [...(config.apiHost !== undefined ? [config.apiHost] : []), `tunnel.${config.tunnelDomain}`];
    certificates = fileCertificates({ certFile: config.tlsCertFile!, keyFile: config.tlsKeyFile!, expectedNames, logger, onChange });
  } else {
    const { acmeCertificates } = await import('./tls/acme-source.ts');
    certificates = await acmeCertificates({
      config,
      db: options.db.db,
      logger,
      clock: options.clock,
      tuning: options.acme,
      isLiveTunnelHost: (hostname) => {
        const route = routeHost(hostname, relay.settings.domain);
        return route.side === 'tunnel' && route.subdomain !== null && relay.registry.lookup(route.subdomain, (options.clock ?? systemClock).now()).state === 'live';
      },
      onChange,
    });
  }
  const source = certificates;
  https = new HttpsListener<SocketData>({
    hostname: config.host,
    port: httpsPort,
    serveOptions,
    entries: () => tlsEntries(source.certificates(), source.defaultName),
    logger,
  });
  try {
    http = listenHttp({ hostname: config.host, port: config.httpPort, challenges: source.challenges, httpsPort, fallbackHost: config.apiHost });
  } catch (error) {
    source.stop();
    throw error;
  }
  // Certificates already at hand (files, or stored by an earlier run) serve from the first moment.
  if (source.certificates().size > 0 && !https.swap() && config.tlsMode === 'files') {
    http.stop(true);
    throw new Error(`HTTPS could not start on port ${httpsPort} with the certificate files (see the log line before)`);
  }
  if (https.server === undefined) {
    logger.info('https waits for its first certificate; the http port answers ACME challenges meanwhile', { https_port: httpsPort, http_port: http.port, names: source.wanted() });
  }
  source.start();
  relay.start();
  const httpServer = http;
  const httpsListener = https;
  return {
    relay,
    app,
    https: httpsListener,
    http: httpServer,
    port: httpsPort,
    httpPort: httpServer.port!,
    certificates: source,
    async stop(force) {
      source.stop();
      await Promise.all([httpsListener.stop(force), httpServer.stop(force)]);
    },
  };
}
