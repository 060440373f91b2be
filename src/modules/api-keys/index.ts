/** Routes: GET/POST /api/v1/api-keys, DELETE /api/v1/api-keys/{id}. */
import { Elysia } from 'elysia';
import type { guardPlugin, Principal } from '../../http/auth.ts';
import type { DirectReads } from '../../http/direct-reads.ts';
import { synchronous } from '../../http/synchronous.ts';
import { errorResponses } from '../../http/error-responses.ts';
import { noContent } from '../../http/openapi-document.ts';
import { ApiKeyList, ApiKeyParams, CreateApiKeyBody, CreateApiKeyRequestBody, CreatedApiKey } from './model.ts';
import type { ApiKeyService } from './service.ts';

const PREFIX = '/api/v1/api-keys';

/** The api-keys feature's routes; the GET of the list is also served by `direct`. */
export function apiKeyRoutes(guard: ReturnType<typeof guardPlugin>, apiKeys: ApiKeyService, direct: DirectReads) {
  const list = (principal: Principal) => apiKeys.list(principal.userId);
  direct.add(PREFIX, list, ApiKeyList);
  return new Elysia({ name: 'modules.api-keys', prefix: PREFIX, detail: { tags: ['api-keys'] } })
    .use(guard)
    .get('', synchronous(({ principal }) => list(principal)), {
      access: { auth: 'any' },
      response: { 200: ApiKeyList, ...errorResponses(['unauthorized', 'payload_too_large', 'rate_limited']) },
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
        access: { auth: 'jwt', body: 'json' },
        body: CreateApiKeyBody,
        response: {
          201: CreatedApiKey,
          ...errorResponses(
            ['validation_error', 'unauthorized', 'forbidden', 'too_many_api_keys', 'payload_too_large', 'unsupported_media_type', 'rate_limited'],
            { validation_error: 'name is required' },
          ),
        },
        detail: {
          summary: 'Create an API key; the full key appears in this answer only',
          security: [{ jwt: [] }],
          requestBody: CreateApiKeyRequestBody,
        },
      },
    )
    .delete(
      '/:id',
      ({ principal, params, set }) => {
        apiKeys.delete(principal.userId, params.id);
        set.status = 204;
      },
      {
        access: { auth: 'jwt', body: 'none' },
        params: ApiKeyParams,
        response: errorResponses(['unauthorized', 'forbidden', 'not_found', 'payload_too_large', 'rate_limited']),
        detail: {
          summary: 'Revoke an API key: refused from the next request on',
          security: [{ jwt: [] }],
          responses: noContent('Revoked: the key is refused from the next request on'),
        },
      },
    );
}
