/** Schemas of the users routes: validation, types and OpenAPI from one place. */
import { t } from 'elysia';
import { answerObject } from '../../http/answer-schema.ts';
import { jsonRequestBody } from '../../http/openapi-document.ts';
import { PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH_FLOOR } from '../../lib/password.ts';

export const User = answerObject(
  {
    id: t.String({ format: 'uuid' }),
    email: t.String({ examples: ['ada@example.com'] }),
    created_at: t.String({ format: 'date-time', examples: ['2024-01-15T10:30:00Z'] }),
  },
  { title: 'User', description: 'The account' },
);

export const ChangePasswordBody = t.Object(
  {
    current_password: t.String({ description: 'The account password now', examples: ['correct-zebra-staple-91'] }),
    new_password: t.String({
      description: `At least ${PASSWORD_MIN_LENGTH_FLOOR} characters (the server may require more), at most ${PASSWORD_MAX_LENGTH}; not a common password; not the current one`,
      examples: ['violet-anchor-lantern-58'],
    }),
  },
  { examples: [{ current_password: 'correct-zebra-staple-91', new_password: 'violet-anchor-lantern-58' }] },
);

/** The body as documented, with the lengths the service checks (answering weak_password, so not validated here). */
export const ChangePasswordRequestBody = jsonRequestBody(ChangePasswordBody, {
  new_password: { minLength: PASSWORD_MIN_LENGTH_FLOOR, maxLength: PASSWORD_MAX_LENGTH },
});

export const MessageBody = answerObject(
  { message: t.String({ examples: ['Password updated successfully'] }) },
  { description: 'Changed: every other session of the account is logged out' },
);
