/** Schemas of the auth routes. Password rules live in the service (they answer weak_password, not validation_error). */
import { t } from 'elysia';
import { User } from '../users/model.ts';

export const Credentials = t.Object({
  email: t.String({ description: 'Trimmed and compared case-insensitively; at most 254 characters', examples: ['ada@example.com'] }),
  password: t.String({ description: 'At least 8 characters (configurable upward), at most 1024; not a common password', examples: ['correct horse battery staple'] }),
});

export const AuthAnswer = t.Object(
  { user: User, token: t.String({ description: 'HS256 JWT valid for 7 days' }) },
  { title: 'AuthAnswer' },
);
