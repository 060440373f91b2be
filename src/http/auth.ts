/**
 * Credentials and the per-route guard. The guard runs, in the contract's order: the auth-class bucket
 * (429), the credential (401), the general bucket (429), the credential's permission (403), then the
 * body's media type and JSON (415, 400). It runs as a transform, before Elysia validates the body
 * against the route's schema, so a bad body can never answer ahead of a bad credential. It never
 * waits on anything, so a guarded route without a body answers synchronously.
 */
import { Elysia, status } from 'elysia';
import { decodeJsonBody, readRawBody } from './body.ts';
import { synchronous } from './synchronous.ts';
import type { ClientAddress } from './client-address.ts';
import { AppError, answerWith, forbidden, unauthorized } from './errors.ts';
import type { LimitClass, RateLimiter } from './rate-limit.ts';

/** Who is calling: a user through a session token or through one of their API keys. */
export type Principal =
  | { kind: 'jwt'; userId: string; sessionId: string }
  | { kind: 'api_key'; userId: string; keyId: string };

/** Resolves an `Authorization` header value to a principal, or null (src/modules/auth/authenticator.ts). */
export interface CredentialCheck {
  fromHeader(header: string | null): Principal | null;
}

// The guard's refusals: made once, answered many times (a flood receives them).
const UNAUTHORIZED = unauthorized();
const FORBIDDEN = forbidden();

/**
 * What a route requires. `limit` marks a route without credentials, limited per client IP in that
 * class (`auth` for register/login, `general` for unknown /api/v1 routes); otherwise `auth` names the
 * credentials accepted: `jwt` (changes the account) or `any` (reads), limited per account.
 *
 * `body` says what a route does with a request body. `json`: it takes a JSON body. `none`: it takes
 * none, but its method may carry one, which is read up to the limit (413 past it) and dropped, as the
 * contract checks the size of every body first. GET routes leave `body` out: Elysia reads no body for
 * them, and without a body to wait for, they answer synchronously.
 */
export type Access = ({ limit: LimitClass } | { auth: 'jwt' | 'any' }) & { body?: 'json' | 'none' };

/** What the guard reads from Elysia's context. */
interface GuardContext {
  request: Request;
  set: { status?: unknown; headers: Record<string, unknown> };
}

/**
 * The guard's checks, in the contract's order, for the `access` macro below and for the direct reads
 * (src/http/direct-reads.ts) alike, so both answer every request the same way.
 */
export class Guard {
  constructor(
    private readonly credentials: CredentialCheck,
    private readonly limiter: RateLimiter,
    private readonly clientOf: (request: Request) => ClientAddress,
  ) {}

  /**
   * Checks `request` against `access`, writing the RateLimit headers of the bucket it took from into
   * `headers`. Returns the refusal to answer (429, 401, 403), the caller when the route takes
   * credentials, or undefined for a route without credentials that may go on.
   */
  check(access: Access, request: Request, headers: Record<string, unknown>): Principal | AppError | undefined {
    if ('limit' in access) return this.limiter.refusal(access.limit, this.clientOf(request).key, headers);
    const principal = this.credentials.fromHeader(request.headers.get('authorization'));
    if (!principal) {
      this.limiter.record('general', this.clientOf(request).key, headers);
      return UNAUTHORIZED;
    }
    const refusal = this.limiter.refusal('general', `user:${principal.userId}`, headers);
    if (refusal) return refusal;
    if (access.auth === 'jwt' && principal.kind !== 'jwt') return FORBIDDEN;
    return principal;
  }
}

/**
 * The `access` macro: add `{ access: { auth: 'jwt' } }` to a route to guard it.
 * Refusals (429, 401, 403) are returned as Elysia status answers rather than thrown: they are what a
 * flood receives, and a throw through the error handler costs more than the rest of the refusal. The
 * answer is the one the errors plugin would give (`answerWith`).
 */
export function guardPlugin(guard: Guard) {
  const principals = new WeakMap<Request, Principal>();
  return new Elysia({ name: 'http.guard' }).macro({
    access: (access: Access) => {
      // The checks are given to Elysia as `synchronous` hooks (see there): they never wait. `resolve` is
      // an arrow with a destructured context: Elysia reads its source to decide what to prepare per
      // request, and a hook handed the whole context makes it parse cookies, query and headers.
      // Elysia answers with a status returned from a transform (its compiled and its dynamic handler
      // both check for one), though its types say a transform returns nothing.
      const check = ({ request, set }: GuardContext): void => {
        const outcome = guard.check(access, request, set.headers);
        if (outcome === undefined) return;
        if (outcome instanceof AppError) return status(outcome.status as 429, answerWith(set, outcome)) as unknown as void;
        principals.set(request, outcome);
      };
      // Routes with a JSON body read it raw (readRawBody) before the guard, and decode it only once the
      // caller has passed: nobody gets the server to parse JSON without a token to spend. These routes
      // write the body back into the context, so they pay for the whole-context preparation; none of
      // them is a hot read.
      const checkThenDecode = (ctx: GuardContext & { body: unknown }): void => {
        const refusal = check(ctx);
        if (refusal !== undefined) return refusal;
        ctx.body = decodeJsonBody(ctx.body);
      };
      const resolve = ({ request }: { request: Request }) => ({ principal: principals.get(request)! });
      if (access.body === 'json') return { parse: readRawBody, transform: synchronous(checkThenDecode), resolve };
      if (access.body === 'none') return { parse: readRawBody, transform: synchronous(check), resolve };
      return { transform: synchronous(check), resolve };
    },
  });
}
