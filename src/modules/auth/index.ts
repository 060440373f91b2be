/** Routes: POST /api/v1/auth/register, /login, /logout. */
import { Elysia } from 'elysia';
import { errorResponses } from '../../http/errors.ts';
import type { guardPlugin } from '../../http/auth.ts';
import { AuthAnswer, Credentials } from './model.ts';
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
        access: { limit: 'auth', json: true },
        body: Credentials,
        response: { 201: AuthAnswer, ...errorResponses(400, 403, 409, 413, 415, 429) },
        detail: { summary: 'Create an account and log in', security: [] },
      },
    )
    .post(
      '/login',
      async ({ body, set }) => {
        set.headers['cache-control'] = NO_STORE;
        return auth.login(body.email, body.password);
      },
      {
        access: { limit: 'auth', json: true },
        body: Credentials,
        response: { 200: AuthAnswer, ...errorResponses(400, 401, 413, 415, 429) },
        detail: { summary: 'Log in: a new 7-day session token', security: [] },
      },
    )
    .post(
      '/logout',
      ({ principal, set }) => {
        if (principal.kind === 'jwt') auth.logout(principal.sessionId);
        set.status = 204;
      },
      {
        access: { auth: 'jwt' },
        response: { ...errorResponses(401, 403, 413, 429) },
        detail: { summary: 'End this session: the token is refused from the next request on', security: [{ jwt: [] }] },
      },
    );
}
