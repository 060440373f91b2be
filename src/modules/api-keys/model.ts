/** Schemas of the api-keys routes. */
import { t } from 'elysia';
import { answerObject } from '../../http/answer-schema.ts';
import { jsonRequestBody } from '../../http/openapi-document.ts';
import { API_KEY_NAME_MAX_LENGTH } from './service.ts';

export const ApiKey = answerObject(
  {
    id: t.String({ format: 'uuid' }),
    name: t.String(),
    key_prefix: t.String({ description: 'First 13 characters of the key', examples: ['exp_k1_3f9a2c'] }),
    created_at: t.String({ format: 'date-time' }),
    last_used_at: t.Union([t.String({ format: 'date-time' }), t.Null()]),
  },
  { title: 'ApiKey' },
);

/** GET /api-keys: the bare array the contract asks for. */
export const ApiKeyList = t.Array(ApiKey, { description: "The caller's live keys, newest first" });

export const CreateApiKeyBody = t.Object(
  { name: t.String({ description: `Trimmed; 1 to ${API_KEY_NAME_MAX_LENGTH} characters`, examples: ['laptop tunnel'] }) },
  { examples: [{ name: 'laptop tunnel' }] },
);

/**
 * The body as documented. The lengths hold after trimming, which the service does (answering
 * validation_error), so the validated schema leaves them out: `"  x  "` is a good name.
 */
export const CreateApiKeyRequestBody = jsonRequestBody(CreateApiKeyBody, { name: { minLength: 1, maxLength: API_KEY_NAME_MAX_LENGTH } });

export const CreatedApiKey = answerObject(
  { api_key: ApiKey, key: t.String({ description: 'The full key: shown in this answer only, never again' }) },
  { title: 'CreatedApiKey', description: "The new key's record, and the full key: shown in this answer only" },
);

export const ApiKeyParams = t.Object({ id: t.String() });
