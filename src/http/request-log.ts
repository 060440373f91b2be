/**
 * Request ids and the access log: every answer carries an `X-Request-Id`, and every request leaves one
 * JSON line (method, path, status, duration, request id, client address) once its answer is made,
 * written at the end of the event-loop turn.
 * Never a header value, a query string or a body: those are where credentials travel.
 */
import type { Logger } from '../lib/logger.ts';
import { redactCredentials } from '../lib/redact.ts';
import { pathStart } from '../lib/request-target.ts';
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

/** What the app answers with; Elysia's compiled handler answers synchronously when no hook awaits. */
export type Fetch = (request: Request) => Response | Promise<Response>;

/** An answer made before the app sees the request, already carrying the request id; undefined to let the app answer. */
export type DirectAnswer = (request: Request, requestId: string) => Response | undefined;

/**
 * The request's path without the query string, a `#fragment` (no browser sends one, a raw client may,
 * and it could carry a secret as well as the query) or anything like a credential. Bun has already
 * resolved `.` and `..` segments; the URL is not parsed again, which cost a visible share of a cheap
 * request.
 */
export function pathOf(url: string): string {
  const start = pathStart(url);
  if (start === -1) return '/';
  const query = url.indexOf('?', start);
  const fragment = url.indexOf('#', start);
  const end = Math.min(query === -1 ? url.length : query, fragment === -1 ? url.length : fragment);
  return redactCredentials(url.slice(start, end));
}

/**
 * The request ids and the access log, around the app rather than inside it (`wrap`): a hook of the
 * app's would cost every request a hook call and a deferred callback, and could only guess the status
 * that left from the route's intent. Here the status is the answer's own, error envelopes included.
 * The caller's address is read once, as the request arrives, for the log and for the rate limiter
 * alike (`client()`).
 */
export class RequestLog {
  private readonly records = new WeakMap<Request, RequestRecord>();
  /**
   * The lines of answers made this event-loop turn. They are logged once the turn's answers have been
   * written: formatting them in between measurably slowed every answer (A/B, ~4 µs per request).
   */
  private unwritten: Array<Record<string, unknown>> = [];
  private readonly writeLines = () => {
    const lines = this.unwritten;
    this.unwritten = [];
    for (const fields of lines) this.logger.info('request', fields);
  };

  constructor(
    private readonly logger: Logger,
    private readonly addresses: ClientAddresses,
  ) {}

  /** The caller of a request in flight. */
  client(request: Request): ClientAddress {
    return this.records.get(request)?.client ?? this.addresses.of(request);
  }

  /** The id of a request in flight, for other lines logged about it. */
  idOf(request: Request): string | undefined {
    return this.records.get(request)?.id;
  }

  /**
   * `fetch` with an `X-Request-Id` on every answer and one access-log line per request, made as the
   * answer leaves the app. Stays synchronous when `fetch` answers synchronously. `direct` is asked
   * first (src/http/direct-reads.ts); its answers carry the id already.
   */
  wrap(fetch: Fetch, direct?: DirectAnswer): Fetch {
    return (request) => {
      const record: RequestRecord = {
        id: requestIdFrom(request.headers.get(REQUEST_ID_HEADER)),
        startNs: Bun.nanoseconds(),
        client: this.addresses.of(request),
      };
      this.records.set(request, record);
      // At debug level, a request that never finishes still shows up.
      if (this.logger.enabled('debug')) this.logger.debug('request started', { method: request.method, path: pathOf(request.url), request_id: record.id });
      const early = direct?.(request, record.id);
      if (early !== undefined) return this.answered(request, record, early);
      const answer = fetch(request);
      return answer instanceof Response ? this.withId(request, record, answer) : answer.then((response) => this.withId(request, record, response));
    };
  }

  private withId(request: Request, record: RequestRecord, response: Response): Response {
    response.headers.set(REQUEST_ID_HEADER, record.id);
    return this.answered(request, record, response);
  }

  private answered(request: Request, record: RequestRecord, response: Response): Response {
    this.unwritten.push({
      method: request.method,
      // The pathname only: a query string may hold a secret someone pasted into a URL.
      path: pathOf(request.url),
      status: response.status,
      duration_ms: Math.round(((Bun.nanoseconds() - record.startNs) / NANOSECONDS_PER_MS) * 100) / 100,
      request_id: record.id,
      ip: record.client.ip,
    });
    if (this.unwritten.length === 1) setImmediate(this.writeLines);
    return response;
  }
}
