/** The OpenAPI document at /docs/json: every route, both bearer schemes, every error as the envelope. */
import { describe, expect, it } from 'bun:test';
import { makeTestApp } from '../helpers/app.ts';

type Operation = { security?: Array<Record<string, string[]>>; responses: Record<string, { content?: Record<string, { schema: any }> }>; requestBody?: unknown };

async function doc() {
  const t = makeTestApp();
  const res = await t.request('GET', '/docs/json');
  expect(res.status).toBe(200);
  return (await res.json()) as { openapi: string; paths: Record<string, Record<string, Operation>>; components: { securitySchemes: Record<string, any> } };
}

const ROUTES: Array<[string, string, string[] | null, boolean]> = [
  ['post', '/api/v1/auth/register', null, true],
  ['post', '/api/v1/auth/login', null, true],
  ['post', '/api/v1/auth/logout', ['jwt'], false],
  ['get', '/api/v1/users/me', ['jwt', 'apiKey'], false],
  ['put', '/api/v1/users/me/password', ['jwt'], true],
  ['get', '/api/v1/api-keys', ['jwt', 'apiKey'], false],
  ['post', '/api/v1/api-keys', ['jwt'], true],
  ['delete', '/api/v1/api-keys/{id}', ['jwt'], false],
  ['get', '/health', null, false],
];

describe('GET /docs/json', () => {
  it('is an OpenAPI 3 document with both bearer schemes', async () => {
    const d = await doc();
    expect(d.openapi.startsWith('3.')).toBe(true);
    expect(d.components.securitySchemes.jwt).toMatchObject({ type: 'http', scheme: 'bearer', bearerFormat: 'JWT' });
    expect(d.components.securitySchemes.apiKey).toMatchObject({ type: 'http', scheme: 'bearer' });
  });

  it('documents exactly the contract’s routes', async () => {
    const d = await doc();
    const documented = Object.entries(d.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m} ${path}`)).sort();
    expect(documented).toEqual(ROUTES.map(([m, p]) => `${m} ${p}`).sort());
  });

  it.each(ROUTES)('%s %s names its credentials, its body and its errors as the envelope', async (method, path, schemes, hasBody) => {
    const op = (await doc()).paths[path]![method]!;
    if (schemes) expect(op.security!.map((s) => Object.keys(s)[0]).sort()).toEqual([...schemes].sort());
    expect(Boolean(op.requestBody)).toBe(hasBody);
    const errors = Object.entries(op.responses).filter(([status]) => Number(status) >= 400);
    expect(errors.length).toBeGreaterThan(0);
    for (const [, response] of errors) {
      const schema = response.content?.['application/json']?.schema;
      expect(Object.keys(schema.properties).sort()).toEqual(['error', 'message']);
    }
  });
});

describe('GET /docs', () => {
  it('serves Swagger UI whose script and stylesheet come from this server', async () => {
    const t = makeTestApp();
    const html = await (await t.request('GET', '/docs')).text();
    expect(html).toContain('SwaggerUIBundle');
    expect(html).not.toMatch(/(src|href)="https?:\/\//);
    for (const asset of html.match(/(?:src|href)="([^"]+)"/g)!.map((m) => m.split('"')[1]!)) {
      const res = await t.request('GET', asset);
      expect(res.status).toBe(200);
      expect((await res.arrayBuffer()).byteLength).toBeGreaterThan(1000);
    }
  });
});
