/** Schemas of the users routes: validation, types and OpenAPI from one place. */
import { t } from 'elysia';

export const User = t.Object(
  {
    id: t.String({ format: 'uuid' }),
    email: t.String({ examples: ['ada@example.com'] }),
    created_at: t.String({ format: 'date-time', examples: ['2024-01-15T10:30:00Z'] }),
  },
  { title: 'User' },
);

export const ChangePasswordBody = t.Object({
  current_password: t.String({ description: 'The account password now' }),
  new_password: t.String({ description: 'At least 8 characters (configurable upward), at most 1024; not a common password; not the current one' }),
});

export const MessageBody = t.Object({ message: t.String({ examples: ['Password updated successfully'] }) });
