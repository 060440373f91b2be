/** openApiDocument on a small app: what Elysia's generator leaves out for an app like ours is put back. */
import { describe, expect, it } from 'bun:test';
import { type AnyElysia, Elysia, t } from 'elysia';
import { jsonRequestBody, noContent, openApiDocument, type DocumentBase } from '../../src/http/openapi-document.ts';
import { errorResponses } from '../../src/http/error-responses.ts';

const BASE: DocumentBase = { info: { title: 'test', version: '0' }, servers: [{ url: '/' }], tags: [], securitySchemes: {} };
const Thing = t.Object({ name: t.String() }, { examples: [{ name: 'lamp' }] });

/** An app whose global parse hook is a function, as ours is, with the docs plugin used first. */
async function documentOf(routes: (app: AnyElysia) => AnyElysia) {
  const docs = new Elysia({ name: 'docs' });
  routes(new Elysia().onParse({ as: 'global' }, async ({ request }) => request.text()).use(docs));
  return (await openApiDocument(docs, BASE, {})) as unknown as { paths: Record<string, Record<string, { requestBody?: any; responses: Record<string, any> }>> };
}

describe('openApiDocument', () => {
  it('documents a body read by a function parser as application/json, from the route’s schema', async () => {
    const doc = await documentOf((app) => app.post('/things', () => 'ok', { body: Thing }));
    expect(doc.paths['/things']!.post!.requestBody).toEqual({
      required: true,
      content: { 'application/json': { schema: expect.objectContaining({ type: 'object', required: ['name'] }), example: { name: 'lamp' } } },
    });
  });

  it('uses the route’s detail.requestBody, lengths included, when it gives one', async () => {
    const requestBody = jsonRequestBody(Thing, { name: { minLength: 1, maxLength: 10 } });
    const doc = await documentOf((app) => app.post('/things', () => 'ok', { body: Thing, detail: { requestBody } }));
    const schema = doc.paths['/things']!.post!.requestBody.content['application/json'].schema;
    expect(schema.properties.name).toMatchObject({ type: 'string', minLength: 1, maxLength: 10 });
  });

  it('keeps the 204 of detail.responses beside the answers drawn from the response schemas', async () => {
    const doc = await documentOf((app) =>
      app.delete('/things/:id', () => undefined, { response: { 404: t.Object({ error: t.String() }) }, detail: { responses: noContent('Gone') } }),
    );
    const responses = doc.paths['/things/{id}']!.delete!.responses;
    expect(Object.keys(responses)).toEqual(['204', '404']);
    expect(responses['204']).toEqual({ description: 'Gone' });
  });
});

describe('errorResponses', () => {
  it('builds each status schema once and shares it between routes that document the same codes and examples', () => {
    const first = errorResponses(['unauthorized', 'rate_limited']);
    const second = errorResponses(['unauthorized', 'payload_too_large', 'rate_limited']);
    expect(second[401]).toBe(first[401]!);
    expect(second[429]).toBe(first[429]!);
    // Another set of codes under one status, or another example, is another schema.
    const forbidden = errorResponses(['forbidden', 'registration_closed']);
    expect(forbidden[403]).not.toBe(errorResponses(['forbidden'])[403]!);
    const named = errorResponses(['validation_error'], { validation_error: 'name is required' });
    expect(named[400]).not.toBe(errorResponses(['validation_error'])[400]!);
    expect((named[400] as { examples: unknown[] }).examples).toEqual([{ error: 'validation_error', message: 'name is required' }]);
  });
});
