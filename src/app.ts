/**
 * createApp(deps): the whole HTTP application, used alike by production and tests. Global plugins come
 * first, in a fixed order (errors before anything else, so every route's failures use the envelope),
 * then one line per feature.
 */
import { Elysia } from 'elysia';
import type { Config } from './config.ts';
import type { DbHandle } from './db/client.ts';
import { type Clock, systemClock } from './lib/clock.ts';
import { JwtCodec } from './lib/jwt.ts';
import type { Logger } from './lib/logger.ts';
import { LoginBackoff } from './lib/login-backoff.ts';
import { PasswordHasher } from './lib/password.ts';
import { Guard, guardPlugin } from './http/auth.ts';
import { bodyPlugin } from './http/body.ts';
import { ClientAddresses, type SocketAddress } from './http/client-address.ts';
import { DirectReads } from './http/direct-reads.ts';
import { docsPlugin } from './http/docs.ts';
import { errorsPlugin, notFound } from './http/errors.ts';
import { RequestLog } from './http/request-log.ts';
import { RateLimiter } from './http/rate-limit.ts';
import { securityHeadersPlugin } from './http/security-headers.ts';
import { ApiKeyService } from './modules/api-keys/service.ts';
import { apiKeyRoutes } from './modules/api-keys/index.ts';
import { AuthService, type LoginThrottle } from './modules/auth/service.ts';
import { authRoutes } from './modules/auth/index.ts';
import { Authenticator } from './modules/auth/authenticator.ts';
import { SessionService } from './modules/auth/sessions.ts';
import { healthRoutes } from './modules/health/index.ts';
import { UserService } from './modules/users/service.ts';
import { userRoutes } from './modules/users/index.ts';
import { tunnelRoutes } from './modules/tunnels/index.ts';
import { NO_TUNNELS, type TunnelDirectory, TunnelService } from './modules/tunnels/service.ts';

/** Everything the app needs from outside; tests pass an in-memory db, a manual clock, cheap hashing. */
export interface AppDeps {
  config: Config;
  db: DbHandle;
  /** The JWT secret in force (configured, or generated and kept in the database). */
  jwtSecret: string;
  logger: Logger;
  clock?: Clock;
  hasher?: PasswordHasher;
  /** Where the caller's socket address comes from: the listener's; tests inject one, as an app called directly has no socket. */
  socketAddress?: SocketAddress;
  /** The live tunnels, for the tunnels API (src/tunnel/relay.ts); none when the app runs without a relay. */
  tunnels?: TunnelDirectory;
  /** The rate limiter, when the caller shares it (the tunnel's connect route takes from the auth class). */
  limiter?: RateLimiter;
}

/** The rate limiter the config asks for. */
export function createLimiter(config: Config, clock: Clock = systemClock): RateLimiter {
  return new RateLimiter({ authPerMinute: config.rateLimitAuth, apiPerMinute: config.rateLimitApi }, clock);
}

const NO_THROTTLE: LoginThrottle = {
  reserve: () => ({ allowed: true, retryAfterSeconds: 0 }),
  recordSuccess: () => {},
};

/** The services behind the routes, exposed for the CLI and tests. */
export function createServices(deps: AppDeps) {
  const clock = deps.clock ?? systemClock;
  const { db } = deps.db;
  const hasher = deps.hasher ?? new PasswordHasher();
  const users = new UserService(db, clock, hasher, deps.config.passwordMinLength);
  const sessions = new SessionService(db, new JwtCodec(deps.jwtSecret), clock);
  const apiKeys = new ApiKeyService(db, clock, deps.config.maxApiKeys);
  // EXPOSE_RATE_LIMIT_AUTH=0 turns the per-account login back-off off too, as the contract says.
  const throttle = deps.config.rateLimitAuth === 0 ? NO_THROTTLE : new LoginBackoff();
  const auth = new AuthService(users, sessions, hasher, throttle, clock, deps.config.registration);
  return { clock, hasher, users, sessions, apiKeys, auth };
}

/** The services behind one app. */
export type Services = ReturnType<typeof createServices>;

/**
 * Builds the application: its routes (`elysia`), the guarded GET reads also answered in front of
 * Elysia (`direct`, see src/http/direct-reads.ts) and `fetch`, which serves them all with a request id
 * on every answer and one access-log line per request. `services` may be passed in when the caller
 * (tests, CLI) needs the same instances.
 */
export function createApp(deps: AppDeps, services: Services = createServices(deps)) {
  const limiter = deps.limiter ?? createLimiter(deps.config, services.clock);
  const socketAddress: SocketAddress = deps.socketAddress ?? (() => undefined);
  const requestLog = new RequestLog(deps.logger, new ClientAddresses(socketAddress, deps.config.trustedProxies));
  const checks = new Guard(new Authenticator(services.sessions, services.apiKeys), limiter, (request) => requestLog.client(request));
  const guard = guardPlugin(checks);
  // The guarded GET reads, answered before Elysia sees them; each module adds its own.
  const direct = new DirectReads(checks, deps.logger);
  // Warm the dummy hash now, so the first login of an unknown email costs what any other does.
  void services.hasher.ensureDummyHash();

  // standardHostname off: Elysia otherwise looks for the path's first "/" from index 11 of the URL,
  // which assumes a host of at least 4 characters; `Host: x` made /api/v1/... route as /v1/... (404).
  // (Behind app.listen() Bun's own router hid this; the one listener in src/server.ts calls fetch.)
  const app = new Elysia({ handler: { standardHostname: false } })
    .use(errorsPlugin(deps.logger, (request) => requestLog.idOf(request)))
    .use(securityHeadersPlugin())
    .use(bodyPlugin())
    .use(docsPlugin())
    .use(healthRoutes(deps.db.sqlite, direct))
    .use(authRoutes(guard, services.auth))
    .use(userRoutes(guard, services.users, direct))
    .use(apiKeyRoutes(guard, services.apiKeys, direct))
    .use(tunnelRoutes(guard, new TunnelService(deps.tunnels ?? NO_TUNNELS), direct))
    .use(guard)
    // Unknown /api/v1 routes and methods are general-class requests like any other: 429 before 404.
    .all('/api/v1/*', () => {
      throw notFound('Not found');
    }, { access: { limit: 'general', body: 'none' }, detail: { hide: true } });
  // `app.fetch` is read on the first request Elysia answers, not here: reading it composes Elysia's
  // handler (milliseconds), which the direct answers (GET /health first of all) never need.
  const elysiaFetch = (request: Request) => app.fetch(request);
  return { elysia: app, direct, fetch: requestLog.wrap(elysiaFetch, (request, requestId) => direct.answer(request, requestId)) };
}
