/** Routes: GET /api/v1/users/me, PUT /api/v1/users/me/password. */
import { Elysia } from 'elysia';
import type { guardPlugin, Principal } from '../../http/auth.ts';
import type { DirectReads } from '../../http/direct-reads.ts';
import { synchronous } from '../../http/synchronous.ts';
import { errorResponses } from '../../http/error-responses.ts';
import { forbidden, unauthorized } from '../../http/errors.ts';
import { PASSWORD_MIN_LENGTH_FLOOR } from '../../lib/password.ts';
import { ChangePasswordBody, ChangePasswordRequestBody, MessageBody, User } from './model.ts';
import type { UserService } from './service.ts';

const PREFIX = '/api/v1/users';

/** The users feature's routes; GET /me is also served by `direct`. */
export function userRoutes(guard: ReturnType<typeof guardPlugin>, users: UserService, direct: DirectReads) {
  const me = (principal: Principal) => {
    const user = users.view(principal.userId);
    if (!user) throw unauthorized();
    return user;
  };
  direct.add(`${PREFIX}/me`, me, User);
  return new Elysia({ name: 'modules.users', prefix: PREFIX, detail: { tags: ['users'] } })
    .use(guard)
    .get(
      '/me',
      synchronous(({ principal }) => me(principal)),
      {
        access: { auth: 'any' },
        response: { 200: User, ...errorResponses(['unauthorized', 'payload_too_large', 'rate_limited']) },
        detail: { summary: 'The calling account', security: [{ jwt: [] }, { apiKey: [] }] },
      },
    )
    .put(
      '/me/password',
      async ({ principal, body }) => {
        // The guard lets only session tokens through (`auth: 'jwt'`); this narrows the type.
        if (principal.kind !== 'jwt') throw forbidden();
        await users.changePassword(principal.userId, principal.sessionId, body.current_password, body.new_password);
        return { message: 'Password updated successfully' };
      },
      {
        access: { auth: 'jwt', body: 'json' },
        body: ChangePasswordBody,
        response: {
          200: MessageBody,
          ...errorResponses(
            ['validation_error', 'weak_password', 'invalid_password', 'unauthorized', 'forbidden', 'payload_too_large', 'unsupported_media_type', 'rate_limited'],
            { validation_error: 'current_password is required', weak_password: `new_password must be at least ${PASSWORD_MIN_LENGTH_FLOOR} characters` },
          ),
        },
        detail: {
          summary: 'Change the password; logs out every other session',
          security: [{ jwt: [] }],
          requestBody: ChangePasswordRequestBody,
        },
      },
    );
}
