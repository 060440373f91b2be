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
  /** The status of the answer as it left, once known. */
  status?: number;
}

type Server = Parameters<SocketAddress>[1];

function numericStatus(status: number | string | undefined): number {
  if (typeof status === 'number') return status;
  return (status !== undefined && (StatusMap as Record<string, number>)[status]) || 200;
}

/** Status carried by an error Elysia saw (its NotFoundError, ValidationError, ... have one). */
function errorStatus(error: unknown): number | undefined {
  const status = (error as { status?: unknown } | undefined)?.status;
  return typeof status === 'number' ? status : undefined;
}

/**
 * The request-id and access-log plugin. Use it right after the errors plugin: its hooks are global, and
 * the status is read from the final answer (error envelopes included), not from the route's intent.
 */
export function requestLogPlugin(options: RequestLogOptions) {
  const records = new WeakMap<Request, RequestRecord>();
  const recordOf = (request: Request, server: Server): RequestRecord => {
    let record = records.get(request);
    if (record === undefined) {
      record = {
        id: requestIdFrom(request.headers.get(REQUEST_ID_HEADER)),
        startNs: Bun.nanoseconds(),
        // Read now: once the answer is sent the socket may be gone.
        ip: clientIp(options.socketAddress(request, server), request.headers.get('x-forwarded-for'), options.trustedProxies),
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
      options.logger.debug('request started', { method: request.method, path: new URL(request.url).pathname, request_id: record.id });
    })
    .mapResponse({ as: 'global' }, ({ request, responseValue, set }) => {
      const record = records.get(request);
      // The errors plugin answers with Response objects whose status set.status does not know.
      if (record) record.status = responseValue instanceof Response ? responseValue.status : numericStatus(set.status);
    })
    .onAfterResponse({ as: 'global' }, (ctx) => {
      const { request, set } = ctx;
      const record = recordOf(request, null);
      // Unknown routes skip mapResponse; the error they raised carries the status the envelope used.
      const status = record.status ?? errorStatus((ctx as { error?: unknown }).error) ?? numericStatus(set.status);
      options.logger.info('request', {
        method: request.method,
        // The pathname only: a query string may hold a secret someone pasted into a URL.
        path: new URL(request.url).pathname,
        status,
        duration_ms: Math.round(((Bun.nanoseconds() - record.startNs) / NANOSECONDS_PER_MS) * 100) / 100,
        request_id: record.id,
        ip: record.ip,
      });
    });
}
