/**
 * Credentials and the per-route guard. The guard runs, in the contract's order: the auth-class bucket
 * (429), the credential (401), the general bucket (429), the credential's permission (403), then the
 * body's media type and JSON (415, 400). It runs as a transform, before Elysia validates the body
 * against the route's schema, so a bad body can never answer ahead of a bad credential.
 */
import { Elysia, status } from 'elysia';
import { decodeJsonBody } from './body.ts';
import type { ClientAddress } from './client-address.ts';
import { answerWith, type AppError, forbidden, unauthorized } from './errors.ts';
import type { LimitClass, RateLimiter } from './rate-limit.ts';

/** Who is calling: a user through a session token or through one of their API keys. */
export type Principal =
  | { kind: 'jwt'; userId: string; sessionId: string }
  | { kind: 'api_key'; userId: string; keyId: string };

/** Resolves an `Authorization` header value to a principal, or null (src/modules/auth/authenticator.ts). */
export interface CredentialCheck {
  fromHeader(header: string | null): Promise<Principal | null>;
}

// The guard's refusals: made once, answered many times (a flood receives them).
const UNAUTHORIZED = unauthorized();
const FORBIDDEN = forbidden();

/**
 * What a route requires. `limit` marks a route without credentials, limited per client IP in that
 * class (`auth` for register/login, `general` for unknown /api/v1 routes); otherwise `auth` names the
 * credentials accepted: `jwt` (changes the account) or `any` (reads), limited per account.
 * `json` routes take a JSON body.
 */
export type Access = { limit: LimitClass; json?: boolean } | { auth: 'jwt' | 'any'; json?: boolean };

/** What the guard reads from Elysia's context. */
interface GuardContext {
  request: Request;
  set: { status?: unknown; headers: Record<string, unknown> };
}

/**
 * The `access` macro: add `{ access: { auth: 'jwt' } }` to a route to guard it.
 * Refusals (429, 401, 403) are returned as Elysia status answers rather than thrown: they are what a
 * flood receives, and a throw through the async hooks plus the error handler costs more than the
 * rest of the refusal. The answer is the one the errors plugin would give (`answerWith`).
 */
export function guardPlugin(credentials: CredentialCheck, limiter: RateLimiter, clientOf: (request: Request) => ClientAddress) {
  const principals = new WeakMap<Request, Principal>();
  return new Elysia({ name: 'http.guard' }).macro({
    access: (access: Access) => {
      // Arrows with a destructured context, not methods: Elysia reads hooks' source to decide what to
      // prepare per request (its `sucrose`). It misreads a minified method (`transform(n){`), and a
      // hook handed the whole context makes it parse cookies, query and headers on every request.
      // Elysia answers with a status returned from a transform (its compiled and its dynamic handler
      // both check for one), though its types say a transform returns nothing.
      const check = async ({ request, set }: GuardContext): Promise<void> => {
        const refuse = (error: AppError) => status(error.status as 429, answerWith(set, error)) as unknown as void;
        if ('limit' in access) {
          const refusal = limiter.refusal(access.limit, clientOf(request).key, set.headers);
          if (refusal) return refuse(refusal);
          return;
        }
        const principal = await credentials.fromHeader(request.headers.get('authorization'));
        if (!principal) {
          limiter.record('general', clientOf(request).key, set.headers);
          return refuse(UNAUTHORIZED);
        }
        const refusal = limiter.refusal('general', `user:${principal.userId}`, set.headers);
        if (refusal) return refuse(refusal);
        if (access.auth === 'jwt' && principal.kind !== 'jwt') return refuse(FORBIDDEN);
        principals.set(request, principal);
      };
      // Routes with a JSON body decode it only once the caller has passed: nobody gets the server to
      // parse JSON without a token to spend. These routes write the body back into the context, so
      // they pay for the whole-context preparation; none of them is a hot read.
      const checkThenDecode = async (ctx: GuardContext & { body: unknown }): Promise<void> => {
        const refusal = await check(ctx);
        if (refusal !== undefined) return refusal;
        ctx.body = decodeJsonBody(ctx.body);
      };
      return {
        transform: access.json ? checkThenDecode : check,
        resolve: ({ request }) => ({ principal: principals.get(request)! }),
      };
    },
  });
}
