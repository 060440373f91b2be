/** Routes: GET/POST /api/v1/api-keys, DELETE /api/v1/api-keys/{id}. */
import { Elysia, t } from 'elysia';
import { errorResponses } from '../../http/errors.ts';
import type { guardPlugin } from '../../http/auth.ts';
import { ApiKey, ApiKeyParams, CreateApiKeyBody, CreatedApiKey } from './model.ts';
import type { ApiKeyService } from './service.ts';

/** The api-keys feature's routes. */
export function apiKeyRoutes(guard: ReturnType<typeof guardPlugin>, apiKeys: ApiKeyService) {
  return new Elysia({ name: 'modules.api-keys', prefix: '/api/v1/api-keys', detail: { tags: ['api-keys'] } })
    .use(guard)
    .get('', ({ principal }) => apiKeys.list(principal.userId), {
      access: { auth: 'any' },
      response: { 200: t.Array(ApiKey), ...errorResponses(401, 429) },
      detail: { summary: "The caller's API keys, newest first", security: [{ jwt: [] }, { apiKey: [] }] },
    })
    .post(
      '',
      ({ principal, body, set }) => {
        set.headers['cache-control'] = 'no-store';
        set.status = 201;
        const created = apiKeys.create(principal.userId, body.name);
        return { api_key: created.apiKey, key: created.key };
      },
      {
        access: { auth: 'jwt', json: true },
        body: CreateApiKeyBody,
        response: { 201: CreatedApiKey, ...errorResponses(400, 401, 403, 409, 413, 415, 429) },
        detail: { summary: 'Create an API key; the full key appears in this answer only', security: [{ jwt: [] }] },
      },
    )
    .delete(
      '/:id',
      ({ principal, params, set }) => {
        apiKeys.delete(principal.userId, params.id);
        set.status = 204;
      },
      {
        access: { auth: 'jwt' },
        params: ApiKeyParams,
        response: { ...errorResponses(401, 403, 404, 429) },
        detail: { summary: 'Revoke an API key: refused from the next request on', security: [{ jwt: [] }] },
      },
    );
}
