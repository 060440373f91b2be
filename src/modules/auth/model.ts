/** Schemas of the auth routes. Password rules live in the service (they answer weak_password, not validation_error). */
import { t } from 'elysia';
import { answerObject } from '../../http/answer-schema.ts';
import { jsonRequestBody } from '../../http/openapi-document.ts';
import { EMAIL_MAX_LENGTH } from '../../lib/email.ts';
import { PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH_FLOOR } from '../../lib/password.ts';
import { User } from '../users/model.ts';

export const Credentials = t.Object(
  {
    email: t.String({ description: `Trimmed and compared case-insensitively; at most ${EMAIL_MAX_LENGTH} characters`, examples: ['ada@example.com'] }),
    password: t.String({
      description: `At least ${PASSWORD_MIN_LENGTH_FLOOR} characters (the server may require more), at most ${PASSWORD_MAX_LENGTH}; not a common password`,
      examples: ['correct-zebra-staple-91'],
    }),
  },
  { examples: [{ email: 'ada@example.com', password: 'correct-zebra-staple-91' }] },
);

/** Register and login's body as documented, with the lengths the service checks. */
export const CredentialsRequestBody = jsonRequestBody(Credentials, {
  email: { maxLength: EMAIL_MAX_LENGTH },
  password: { minLength: PASSWORD_MIN_LENGTH_FLOOR, maxLength: PASSWORD_MAX_LENGTH },
});

export const AuthAnswer = answerObject(
  { user: User, token: t.String({ description: 'HS256 JWT valid for 7 days' }) },
  { title: 'AuthAnswer', description: 'The account and a new session token' },
);
