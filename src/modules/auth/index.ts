/** Routes: POST /api/v1/auth/register, /login, /logout. */
import { Elysia } from 'elysia';
import type { guardPlugin } from '../../http/auth.ts';
import { errorResponses } from '../../http/error-responses.ts';
import { noContent } from '../../http/openapi-document.ts';
import { AuthAnswer, Credentials, CredentialsRequestBody } from './model.ts';
import type { AuthService } from './service.ts';

const NO_STORE = 'no-store';

/** The auth feature's routes. */
export function authRoutes(guard: ReturnType<typeof guardPlugin>, auth: AuthService) {
  return new Elysia({ name: 'modules.auth', prefix: '/api/v1/auth', detail: { tags: ['auth'] } })
    .use(guard)
    .post(
      '/register',
      async ({ body, set }) => {
        set.headers['cache-control'] = NO_STORE;
        set.status = 201;
        return auth.register(body.email, body.password);
      },
      {
        access: { limit: 'auth', body: 'json' },
        body: Credentials,
        response: {
          201: AuthAnswer,
          ...errorResponses(
            ['validation_error', 'weak_password', 'registration_closed', 'email_taken', 'payload_too_large', 'unsupported_media_type', 'rate_limited'],
          ),
        },
        detail: { summary: 'Create an account and log in', security: [], requestBody: CredentialsRequestBody },
      },
    )
    .post(
      '/login',
      async ({ body, set }) => {
        set.headers['cache-control'] = NO_STORE;
        return auth.login(body.email, body.password);
      },
      {
        access: { limit: 'auth', body: 'json' },
        body: Credentials,
        response: {
          200: AuthAnswer,
          // 403: a disabled account, told only to the right password. 429: the address's bucket, or the
          // account's back-off after repeated failures.
          ...errorResponses(['validation_error', 'invalid_credentials', 'forbidden', 'payload_too_large', 'unsupported_media_type', 'rate_limited']),
        },
        detail: { summary: 'Log in: a new 7-day session token', security: [], requestBody: CredentialsRequestBody },
      },
    )
    .post(
      '/logout',
      ({ principal, set }) => {
        if (principal.kind === 'jwt') auth.logout(principal.sessionId);
        set.status = 204;
      },
      {
        access: { auth: 'jwt', body: 'none' },
        response: errorResponses(['unauthorized', 'forbidden', 'payload_too_large', 'rate_limited']),
        detail: {
          summary: 'End this session: the token is refused from the next request on',
          security: [{ jwt: [] }],
          responses: noContent('Logged out: this token is refused from the next request on'),
        },
      },
    );
}
