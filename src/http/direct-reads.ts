/**
 * The guarded GET reads (GET /api/v1/users/me, /api-keys, /tunnels), and GET /health, answered in
 * front of Elysia. The reads are most of what an API key does all day, /health is what orchestrators
 * poll (and wait for at start-up), and on a read this cheap Elysia's per-request machinery
 * (the context, its hooks, the header map copied into every answer and turned into a Headers object,
 * the request id added to the finished answer) cost more than the read itself.
 *
 * Each read is the same function the Elysia route calls, the checks are the guard's own (`Guard`), and
 * the answer is cleaned and checked against the route's response schema as Elysia does, so the answers
 * are the same: status, body, every header (test/http/direct-reads.test.ts compares the two paths
 * request by request). What differs is how they are built: headers are copied from a
 * Headers object made once at start, the request id goes in before the Response exists.
 *
 * Anything else falls through to Elysia: another method (HEAD included), another path, and any request
 * that announces a body (Content-Length or Transfer-Encoding), whose size rule Elysia's hooks apply.
 */
import { getSchemaValidator, type TSchema } from 'elysia';
import { lazy } from '../lib/lazy.ts';
import type { Logger } from '../lib/logger.ts';
import { pathStart } from '../lib/request-target.ts';
import type { Access, Guard, Principal } from './auth.ts';
import { AppError, INTERNAL_ERROR, JSON_CONTENT_TYPE, logUnexpected } from './errors.ts';
import { REQUEST_ID_HEADER } from './request-log.ts';
import { SECURITY_HEADERS } from './security-headers.ts';

/** A read: what the route answers for `principal`. May throw an AppError (a 401 when the account is gone). */
export type Read = (principal: Principal) => unknown;

/** A read open to anyone, without credential or rate limit: what the route answers. May throw an AppError. */
export type PublicRead = () => unknown;

/** What `Response.json` (Elysia's answer for an object) sends. */
const JSON_BODY_TYPE = 'application/json;charset=utf-8';

/**
 * The headers of every success, and the base of every refusal's: the security headers and the
 * Content-Type, then per answer its request id and any extra headers. `new Response` copies the
 * headers it is given, so one Headers object serves every success: set, copied into the Response,
 * and the extras put back as they were before anything else can run (cloning a Headers object per
 * answer cost ~1 µs). Refusals have sets of their own (RefusalHeaders).
 */
const SUCCESS_HEADERS = new Headers({ ...SECURITY_HEADERS, 'content-type': JSON_BODY_TYPE });
const ERROR_HEADERS = new Headers({ ...SECURITY_HEADERS, 'content-type': JSON_CONTENT_TYPE });

/** An answer: `headers` (SUCCESS_HEADERS), with `extra` (the RateLimit headers) and the request id. */
function answer(status: number, text: string, headers: Headers, extra: Record<string, unknown>, requestId: string): Response {
  // What each extra replaces, put back afterwards (none of them replaces anything today).
  let replaced: Array<[string, string | null]> | undefined;
  try {
    for (const name in extra) {
      (replaced ??= []).push([name, headers.get(name)]);
      headers.set(name, String(extra[name]));
    }
    headers.set(REQUEST_ID_HEADER, requestId);
    return new Response(text, { status, headers });
  } finally {
    if (replaced !== undefined) {
      for (const [name, before] of replaced) {
        if (before === null) headers.delete(name);
        else headers.set(name, before);
      }
    }
  }
}

/** Refusal header sets remembered; at the cap the table starts again empty. */
export const REFUSAL_HEADERS_MAX = 256;

/**
 * The headers of refusals (401, 429, a 500), by their extra headers. A flood is answered with the
 * same few refusals, whose extras (RateLimit, Retry-After, WWW-Authenticate) change at most once a
 * second: one Headers object per distinct set is made once and reused, only its request id set per
 * answer, where setting and restoring each extra on the shared object cost more than the lookup.
 * The extras are the server's own values (bucket counts, seconds), never a caller's text.
 */
export class RefusalHeaders {
  private readonly byExtras = new Map<string, Headers>();

  of(first: Record<string, unknown>, second: Record<string, unknown>): Headers {
    let key = '';
    for (const name in first) key += `${name}\n${first[name]}\n`;
    for (const name in second) key += `${name}\n${second[name]}\n`;
    let headers = this.byExtras.get(key);
    if (headers === undefined) {
      headers = new Headers(ERROR_HEADERS);
      for (const name in first) headers.set(name, String(first[name]));
      // As the spread `{ ...first, ...second }` did: the second's value wins.
      for (const name in second) headers.set(name, String(second[name]));
      if (this.byExtras.size >= REFUSAL_HEADERS_MAX) this.byExtras.clear();
      this.byExtras.set(key, headers);
    }
    return headers;
  }

  /** Sets held; never more than REFUSAL_HEADERS_MAX. */
  get size(): number {
    return this.byExtras.size;
  }
}

/** A refusal: `error`'s status and envelope, its headers and `extra`, and the request id. */
function refusal(table: RefusalHeaders, error: AppError, extra: Record<string, unknown>, requestId: string): Response {
  const headers = table.of(extra, error.headers);
  headers.set(REQUEST_ID_HEADER, requestId);
  return new Response(error.body, { status: error.status, headers });
}

/** What Elysia checks a route's answer with: the schema, compiled, and a cleaner that drops any field it does not name. */
type Validator = NonNullable<ReturnType<typeof getSchemaValidator<TSchema>>>;

/** What every direct read requires: the reads of the contract take a session token or an API key. */
const ANY_CREDENTIAL: Access = { auth: 'any' };

interface Route {
  /** The read, and whether it takes a credential (all but GET /health do). */
  read: Read;
  guarded: boolean;
  /**
   * Compiled on the route's first answer, as Elysia compiles its own: compiling costs start-up
   * milliseconds. Undefined for a route whose Elysia twin declares no response schema either.
   */
  response: (() => Validator) | undefined;
  /**
   * The answer text of each deeply frozen value the read returned: checked and serialised once. A read
   * served from a cache hands back the same frozen object until the data changes, and such an object
   * can never change; a new object (the data changed) is checked afresh. Entries go with their objects.
   */
  texts: WeakMap<object, string>;
}

/**
 * Whether `value` can never change: a primitive, or a frozen plain object or array whose values are
 * all such. A getter, a Date (whose time a frozen Date still lets `setTime` change) or any other
 * class could answer differently the next time, so none of them counts.
 */
export function deeplyFrozen(value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return typeof value !== 'function';
  if (!Object.isFrozen(value)) return false;
  const proto = Object.getPrototypeOf(value);
  if (Array.isArray(value) ? proto !== Array.prototype : proto !== Object.prototype && proto !== null) return false;
  for (const descriptor of Object.values(Object.getOwnPropertyDescriptors(value))) {
    if (!('value' in descriptor) || !deeplyFrozen(descriptor.value)) return false;
  }
  return true;
}

/** `value` cleaned of fields `validator`'s schema does not name; throws when it does not match the schema. */
function checked(validator: Validator, value: unknown): unknown {
  let clean = value;
  try {
    clean = validator.Clean?.(value) ?? value;
  } catch {
    // As Elysia: a value the cleaner cannot walk is checked as it is.
  }
  if (!validator.Check(clean)) throw new Error('a direct read answered a value its response schema refuses');
  return clean;
}

/** The body of a 200 answering `value`: cleaned, checked and serialised, or remembered from the last time. */
function text(route: Route, value: unknown): string {
  const remembered = typeof value === 'object' && value !== null;
  if (remembered) {
    const known = route.texts.get(value);
    if (known !== undefined) return known;
  }
  const serialised = JSON.stringify(route.response === undefined ? value : checked(route.response(), value));
  if (remembered && deeplyFrozen(value)) route.texts.set(value, serialised);
  return serialised;
}

/** The direct reads of one app; `answer` is called for every request before Elysia sees it. */
export class DirectReads {
  private readonly routes = new Map<string, Route>();
  private readonly refusals = new RefusalHeaders();

  constructor(
    private readonly guard: Guard,
    private readonly logger: Logger,
  ) {}

  /**
   * Serves `read` for GET `path` (and `path/`, as Elysia does) to callers with any credential, as the
   * route's `access: { auth: 'any' }` does. `response` is the route's 200 schema: as Elysia does, each
   * answer is cleaned of any field the schema does not name, then checked against it.
   */
  add(path: string, read: Read, response: TSchema): void {
    // Elysia's default normalisation (an exact mirror of the schema), as for the routes it serves.
    this.serve(path, { read, guarded: true, response: lazy(() => getSchemaValidator(response, { normalize: true }) as Validator), texts: new WeakMap() });
  }

  /**
   * Serves `read` for GET `path` (and `path/`) to anyone, with no credential and no rate limit, as a
   * route without the `access` macro is served, and without a response schema, like its Elysia route.
   */
  addPublic(path: string, read: PublicRead): void {
    this.serve(path, { read, guarded: false, response: undefined, texts: new WeakMap() });
  }

  private serve(path: string, route: Route): void {
    this.routes.set(path, route);
    this.routes.set(`${path}/`, route);
  }

  /** The paths served, for tests. */
  get paths(): string[] {
    return [...this.routes.keys()];
  }

  /** The answer to `request`, or undefined when Elysia must answer it. */
  answer(request: Request, requestId: string): Response | undefined {
    if (request.method !== 'GET') return undefined;
    const url = request.url;
    const start = pathStart(url);
    if (start === -1) return undefined;
    const query = url.indexOf('?', start);
    const route = this.routes.get(query === -1 ? url.slice(start) : url.slice(start, query));
    if (route === undefined) return undefined;
    const headers = request.headers;
    if (headers.has('content-length') || headers.has('transfer-encoding')) return undefined;

    const extra: Record<string, unknown> = {};
    let outcome: Principal | AppError | undefined;
    try {
      // A route that takes credentials always has a caller or a refusal.
      if (route.guarded) outcome = this.guard.check(ANY_CREDENTIAL, request, extra) as Principal | AppError;
      // A public route's read takes no caller (addPublic): it is called without one.
      if (!(outcome instanceof AppError)) return answer(200, text(route, route.read(outcome as Principal)), SUCCESS_HEADERS, extra, requestId);
    } catch (error) {
      outcome = error instanceof AppError ? error : INTERNAL_ERROR;
      if (outcome === INTERNAL_ERROR) logUnexpected(this.logger, request, requestId, error);
    }
    return refusal(this.refusals, outcome, extra, requestId);
  }
}
