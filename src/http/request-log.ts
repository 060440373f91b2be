/**
 * Request ids and the access log: every answer carries an `X-Request-Id`, and every request leaves one
 * JSON line (method, path, status, duration, request id, client address) once its answer is sent.
 * Never a header value, a query string or a body: those are where credentials travel.
 */
import { Elysia, StatusMap } from 'elysia';
import { clientIp, type Cidr } from '../lib/client-ip.ts';
import type { Logger } from '../lib/logger.ts';
import type { SocketAddress } from './auth.ts';

/** The header that carries the id, in both directions. */
export const REQUEST_ID_HEADER = 'x-request-id';

/**
 * An id set by a proxy in front is kept only when short and plain, so it can neither forge log
 * fields nor smuggle anything into the answer's headers.
 */
const SAFE_REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

const NANOSECONDS_PER_MS = 1e6;

/**
 * Socket addresses whose canonical client address is remembered. A keep-alive client sends many
 * requests from one address, and parsing and formatting it each time is a measurable share of a
 * cheap request. The table is emptied when full, so a flood of new addresses cannot grow it.
 */
const PEER_MEMO_MAX_ENTRIES = 1024;

/** The incoming id when it is safe to reuse, else a fresh UUID. */
export function requestIdFrom(incoming: string | null): string {
  return incoming !== null && SAFE_REQUEST_ID.test(incoming) ? incoming : crypto.randomUUID();
}

/** What the plugin needs; the same socket-address hook as the guard, so tests can inject a peer. */
export interface RequestLogOptions {
  logger: Logger;
  trustedProxies: readonly Cidr[];
  socketAddress: SocketAddress;
}

interface RequestRecord {
  id: string;
  startNs: number;
  ip: string | undefined;
}

type Server = Parameters<SocketAddress>[1];

function numericStatus(status: number | string | undefined): number {
  if (typeof status === 'number') return status;
  return (status !== undefined && (StatusMap as Record<string, number>)[status]) || 200;
}

/**
 * The request's path without the query string, as Elysia routed it (Bun has already resolved `.` and
 * `..` segments). Elysia computes it for every request, though its types leave it out of onRequest's
 * context; parsing the URL again cost a visible share of a cheap request. A `#fragment`, which no
 * browser sends but a raw client may, is cut as `new URL()` would: it could carry a secret too.
 */
function pathOf(ctx: object): string {
  const path = (ctx as { path: string }).path;
  const hashAt = path.indexOf('#');
  return hashAt === -1 ? path : path.slice(0, hashAt);
}

/** Status carried by an error Elysia saw (its NotFoundError, ValidationError, ... have one). */
function errorStatus(error: unknown): number | undefined {
  const status = (error as { status?: unknown } | undefined)?.status;
  return typeof status === 'number' ? status : undefined;
}

/**
 * The status of the answer that left, read once it is sent. A route may answer with a Response object
 * (kept in `responseValue`), whose status `set.status` does not know; everything else, the errors
 * plugin's envelopes and the guard's refusals included, went out with `set.status`. Should an error
 * have ended the request with `set.status` never moved from 200, the error carries the status.
 */
function answeredStatus(ctx: { set: { status?: number | string }; responseValue?: unknown; error?: unknown }): number {
  if (ctx.responseValue instanceof Response) return ctx.responseValue.status;
  const status = numericStatus(ctx.set.status);
  return status === 200 && ctx.error !== undefined ? (errorStatus(ctx.error) ?? status) : status;
}

/**
 * The request-id and access-log plugin. Use it right after the errors plugin: its hooks are global, and
 * the status is read from the final answer (error envelopes included), not from the route's intent.
 */
export function requestLogPlugin(options: RequestLogOptions) {
  const records = new WeakMap<Request, RequestRecord>();
  // Only for requests without X-Forwarded-For: then the answer depends on the socket address alone.
  const peerMemo = new Map<string, string | undefined>();
  const clientIpOf = (request: Request, server: Server): string | undefined => {
    const socketAddress = options.socketAddress(request, server);
    const forwardedFor = request.headers.get('x-forwarded-for');
    if (forwardedFor !== null || socketAddress === undefined) return clientIp(socketAddress, forwardedFor, options.trustedProxies);
    let ip = peerMemo.get(socketAddress);
    if (ip === undefined && !peerMemo.has(socketAddress)) {
      ip = clientIp(socketAddress, null, options.trustedProxies);
      if (peerMemo.size >= PEER_MEMO_MAX_ENTRIES) peerMemo.clear();
      peerMemo.set(socketAddress, ip);
    }
    return ip;
  };
  const recordOf = (request: Request, server: Server): RequestRecord => {
    let record = records.get(request);
    if (record === undefined) {
      record = {
        id: requestIdFrom(request.headers.get(REQUEST_ID_HEADER)),
        startNs: Bun.nanoseconds(),
        // Read now: once the answer is sent the socket may be gone.
        ip: clientIpOf(request, server),
      };
      records.set(request, record);
    }
    return record;
  };

  return new Elysia({ name: 'http.request-log' })
    .onRequest((ctx) => {
      const { request, set } = ctx;
      const record = recordOf(request, (ctx as { server?: Server }).server ?? null);
      set.headers[REQUEST_ID_HEADER] = record.id;
      // At debug level, a request that never finishes still shows up.
      if (options.logger.enabled('debug')) options.logger.debug('request started', { method: request.method, path: pathOf(ctx), request_id: record.id });
    })
    .onAfterResponse({ as: 'global' }, (ctx) => {
      const { request } = ctx;
      const record = recordOf(request, null);
      options.logger.info('request', {
        method: request.method,
        // The pathname only (Elysia's routing path, which stops before the query string): a query
        // string may hold a secret someone pasted into a URL.
        path: pathOf(ctx),
        status: answeredStatus(ctx),
        duration_ms: Math.round(((Bun.nanoseconds() - record.startNs) / NANOSECONDS_PER_MS) * 100) / 100,
        request_id: record.id,
        ip: record.ip,
      });
    });
}
