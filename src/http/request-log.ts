/**
 * Request ids and the access log: every answer carries an `X-Request-Id`, and every request leaves one
 * JSON line (method, path, status, duration, request id, client address) once its answer is sent.
 * Never a header value, a query string or a body: those are where credentials travel.
 */
import { Elysia, StatusMap } from 'elysia';
import type { Logger } from '../lib/logger.ts';
import { redactCredentials } from '../lib/redact.ts';
import type { ClientAddress, ClientAddresses } from './client-address.ts';

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

interface RequestRecord {
  id: string;
  startNs: number;
  client: ClientAddress;
}

function numericStatus(status: number | string | undefined): number {
  if (typeof status === 'number') return status;
  return (status !== undefined && (StatusMap as Record<string, number>)[status]) || 200;
}

/**
 * What the hooks read from Elysia's context. `path` and `error` are there at run time though Elysia's
 * types for these hooks leave them out, hence optional.
 */
interface HookContext {
  request: Request;
  set: { headers: Record<string, unknown>; status?: number | string };
  path?: string;
}

/**
 * The request's path without the query string or anything like a credential, as Elysia routed it (Bun has already resolved `.` and
 * `..` segments); parsing the URL again cost a visible share of a cheap request. A `#fragment`, which
 * no browser sends but a raw client may, is cut as `new URL()` would: it could carry a secret too.
 */
function pathOf(request: Request, routed: string | undefined): string {
  const path = routed ?? new URL(request.url).pathname;
  const hashAt = path.indexOf('#');
  return redactCredentials(hashAt === -1 ? path : path.slice(0, hashAt));
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
function answeredStatus(set: { status?: number | string }, responseValue: unknown, error: unknown): number {
  if (responseValue instanceof Response) return responseValue.status;
  const status = numericStatus(set.status);
  return status === 200 && error !== undefined ? (errorStatus(error) ?? status) : status;
}

/**
 * The request ids and the access log. `plugin()` goes right after the errors plugin: its hooks are
 * global, and the status is read from the final answer (error envelopes included), not from the
 * route's intent. The caller's address is read once, when the request arrives, for the log and for
 * the rate limiter alike (`client()`).
 */
export class RequestLog {
  private readonly records = new WeakMap<Request, RequestRecord>();

  constructor(
    private readonly logger: Logger,
    private readonly addresses: ClientAddresses,
  ) {}

  /** The caller of a request in flight. */
  client(request: Request): ClientAddress {
    return this.records.get(request)?.client ?? this.addresses.of(request);
  }

  private recordOf(request: Request): RequestRecord {
    let record = this.records.get(request);
    if (record === undefined) {
      record = {
        id: requestIdFrom(request.headers.get(REQUEST_ID_HEADER)),
        startNs: Bun.nanoseconds(),
        client: this.addresses.of(request),
      };
      this.records.set(request, record);
    }
    return record;
  }

  /**
   * The hooks. Their context is destructured, not passed around: Elysia reads the hooks' source to
   * decide what to prepare for every request (`sucrose`), and a whole context handed to a function
   * makes it parse cookies, query and headers on every request for nothing.
   */
  plugin() {
    const { logger } = this;
    return new Elysia({ name: 'http.request-log' })
      .onRequest(({ request, set, path }: HookContext) => {
        const record = this.recordOf(request);
        set.headers[REQUEST_ID_HEADER] = record.id;
        // At debug level, a request that never finishes still shows up.
        if (logger.enabled('debug')) logger.debug('request started', { method: request.method, path: pathOf(request, path), request_id: record.id });
      })
      .onAfterResponse({ as: 'global' }, ({ request, set, path, responseValue, error }: HookContext & { responseValue?: unknown; error?: unknown }) => {
        const record = this.recordOf(request);
        logger.info('request', {
          method: request.method,
          // The pathname only (Elysia's routing path, which stops before the query string): a query
          // string may hold a secret someone pasted into a URL.
          path: pathOf(request, path),
          status: answeredStatus(set, responseValue, error),
          duration_ms: Math.round(((Bun.nanoseconds() - record.startNs) / NANOSECONDS_PER_MS) * 100) / 100,
          request_id: record.id,
          ip: record.client.ip,
        });
      });
  }
}
