/** Schemas of the api-keys routes. */
import { t } from 'elysia';

export const ApiKey = t.Object(
  {
    id: t.String({ format: 'uuid' }),
    name: t.String(),
    key_prefix: t.String({ description: 'First 13 characters of the key', examples: ['exp_k1_3f9a2c'] }),
    created_at: t.String({ format: 'date-time' }),
    last_used_at: t.Union([t.String({ format: 'date-time' }), t.Null()]),
  },
  { title: 'ApiKey' },
);

export const CreateApiKeyBody = t.Object({
  name: t.String({ description: 'Trimmed; 1 to 100 characters', examples: ['laptop tunnel'] }),
});

export const CreatedApiKey = t.Object(
  { api_key: ApiKey, key: t.String({ description: 'The full key: shown in this answer only, never again' }) },
  { title: 'CreatedApiKey' },
);

export const ApiKeyParams = t.Object({ id: t.String() });
