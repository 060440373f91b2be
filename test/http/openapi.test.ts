/**
 * The OpenAPI document at /docs/json: every route of the contract with its credentials, its JSON body
 * (fields, lengths, an example), its answers with the codes the route really gives, and a document
 * that Redocly's linter passes.
 */
import { afterAll, describe, expect, it } from 'bun:test';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTestApp, type TestApp } from '../helpers/app.ts';

type Schema = { type?: string; const?: string; enum?: string[]; required?: string[]; properties?: Record<string, Schema>; examples?: unknown[]; minLength?: number; maxLength?: number };
type Media = { schema: Schema; example?: unknown; examples?: Record<string, { value: unknown }> };
type DocResponse = { description: string; headers?: Record<string, unknown>; content?: Record<string, Media> };
type Operation = { security?: Array<Record<string, string[]>>; responses: Record<string, DocResponse>; requestBody?: { required?: boolean; content: Record<string, Media> } };
type Document = {
  openapi: string;
  servers?: Array<{ url: string }>;
  paths: Record<string, Record<string, Operation>>;
  components: { securitySchemes: Record<string, Record<string, string>> };
};

async function doc(t: TestApp = makeTestApp()): Promise<Document> {
  const res = await t.request('GET', '/docs/json');
  expect(res.status).toBe(200);
  return (await res.json()) as Document;
}

type Lengths = Record<string, { minLength?: number; maxLength?: number }>;
interface Route {
  method: string;
  path: string;
  schemes: string[] | null;
  /** The JSON body's fields (all required) and the lengths the contract gives them. */
  body?: Lengths;
  /** Every answer the route documents: the success status, then each error status with its codes. */
  answers: Record<number, string[]>;
}

// The contract's table, route by route. 413 applies to every request (the size check runs first).
const ROUTES: Route[] = [
  {
    method: 'post',
    path: '/api/v1/auth/register',
    schemes: null,
    body: { email: { maxLength: 254 }, password: { minLength: 8, maxLength: 1024 } },
    answers: {
      201: [],
      400: ['validation_error', 'weak_password'],
      403: ['registration_closed'],
      409: ['email_taken'],
      413: ['payload_too_large'],
      415: ['unsupported_media_type'],
      429: ['rate_limited'],
    },
  },
  {
    method: 'post',
    path: '/api/v1/auth/login',
    schemes: null,
    body: { email: { maxLength: 254 }, password: { minLength: 8, maxLength: 1024 } },
    answers: {
      200: [],
      400: ['validation_error'],
      401: ['invalid_credentials'],
      403: ['forbidden'],
      413: ['payload_too_large'],
      415: ['unsupported_media_type'],
      429: ['rate_limited'],
    },
  },
  {
    method: 'post',
    path: '/api/v1/auth/logout',
    schemes: ['jwt'],
    answers: { 204: [], 401: ['unauthorized'], 403: ['forbidden'], 413: ['payload_too_large'], 429: ['rate_limited'] },
  },
  {
    method: 'get',
    path: '/api/v1/users/me',
    schemes: ['jwt', 'apiKey'],
    answers: { 200: [], 401: ['unauthorized'], 413: ['payload_too_large'], 429: ['rate_limited'] },
  },
  {
    method: 'put',
    path: '/api/v1/users/me/password',
    schemes: ['jwt'],
    body: { current_password: {}, new_password: { minLength: 8, maxLength: 1024 } },
    answers: {
      200: [],
      400: ['validation_error', 'weak_password', 'invalid_password'],
      401: ['unauthorized'],
      403: ['forbidden'],
      413: ['payload_too_large'],
      415: ['unsupported_media_type'],
      429: ['rate_limited'],
    },
  },
  {
    method: 'get',
    path: '/api/v1/api-keys',
    schemes: ['jwt', 'apiKey'],
    answers: { 200: [], 401: ['unauthorized'], 413: ['payload_too_large'], 429: ['rate_limited'] },
  },
  {
    method: 'post',
    path: '/api/v1/api-keys',
    schemes: ['jwt'],
    body: { name: { minLength: 1, maxLength: 100 } },
    answers: {
      201: [],
      400: ['validation_error'],
      401: ['unauthorized'],
      403: ['forbidden'],
      409: ['too_many_api_keys'],
      413: ['payload_too_large'],
      415: ['unsupported_media_type'],
      429: ['rate_limited'],
    },
  },
  {
    method: 'delete',
    path: '/api/v1/api-keys/{id}',
    schemes: ['jwt'],
    answers: { 204: [], 401: ['unauthorized'], 403: ['forbidden'], 404: ['not_found'], 413: ['payload_too_large'], 429: ['rate_limited'] },
  },
  {
    method: 'get',
    path: '/api/v1/tunnels',
    schemes: ['jwt', 'apiKey'],
    answers: { 200: [], 401: ['unauthorized'], 413: ['payload_too_large'], 429: ['rate_limited'] },
  },
  {
    method: 'get',
    path: '/api/v1/tunnels/{id}',
    schemes: ['jwt', 'apiKey'],
    answers: { 200: [], 401: ['unauthorized'], 404: ['not_found'], 413: ['payload_too_large'], 429: ['rate_limited'] },
  },
  {
    method: 'delete',
    path: '/api/v1/tunnels/{id}',
    schemes: ['jwt', 'apiKey'],
    answers: { 204: [], 401: ['unauthorized'], 404: ['not_found'], 413: ['payload_too_large'], 429: ['rate_limited'] },
  },
  { method: 'get', path: '/health', schemes: [], answers: { 200: [], 413: ['payload_too_large'], 503: ['unavailable'] } },
];

/** The contract's messages, where it fixes them. */
const EXACT_MESSAGES: Record<string, string> = {
  invalid_password: 'Current password is incorrect',
  unauthorized: 'Invalid or expired token',
  invalid_credentials: 'Invalid email or password',
  forbidden: "You don't have permission to access this resource",
  registration_closed: 'Registration is closed on this server',
  not_found: 'API key not found',
  email_taken: 'An account with this email already exists',
  too_many_api_keys: 'API key limit reached',
  rate_limited: 'Too many requests, please try again later',
};

/** The codes a documented error answer allows in `error`. */
function codesOf(schema: Schema): string[] {
  const error = schema.properties!.error!;
  return error.enum ?? (error.const === undefined ? [] : [error.const]);
}

/** The documented example of `code` on an operation, whatever status it is under. */
function exampleOf(operation: Operation, code: string): { error: string; message: string } | undefined {
  for (const response of Object.values(operation.responses)) {
    const examples = (response.content?.['application/json']?.schema.examples ?? []) as Array<{ error: string; message: string }>;
    const found = examples.find((example) => example.error === code);
    if (found) return found;
  }
  return undefined;
}

describe('GET /docs/json', () => {
  it('is an OpenAPI 3.1 document with both bearer schemes and the serving host as its server', async () => {
    const d = await doc();
    expect(d.openapi).toStartWith('3.1.');
    expect(d.components.securitySchemes.jwt).toMatchObject({ type: 'http', scheme: 'bearer', bearerFormat: 'JWT' });
    expect(d.components.securitySchemes.apiKey).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(d.servers).toEqual([expect.objectContaining({ url: '/' })]);
  });

  it('documents exactly the contract’s routes', async () => {
    const d = await doc();
    const documented = Object.entries(d.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m} ${path}`)).sort();
    expect(documented).toEqual(ROUTES.map(({ method, path }) => `${method} ${path}`).sort());
  });

  it.each(ROUTES.map((route) => [route.method, route.path, route] as const))('%s %s names the credentials it accepts', async (method, path, route) => {
    const op = (await doc()).paths[path]![method]!;
    if (route.schemes === null) expect(op.security).toEqual([]);
    else expect(op.security!.map((s) => Object.keys(s)[0]).sort()).toEqual([...route.schemes].sort());
  });

  it.each(ROUTES.map((route) => [route.method, route.path, route] as const))(
    '%s %s documents its body as application/json with its fields, lengths and an example, or no body',
    async (method, path, route) => {
      const op = (await doc()).paths[path]![method]!;
      if (!route.body) {
        expect(op.requestBody).toBeUndefined();
        return;
      }
      expect(op.requestBody!.required).toBe(true);
      expect(Object.keys(op.requestBody!.content)).toEqual(['application/json']);
      const { schema, example } = op.requestBody!.content['application/json']!;
      const fields = Object.keys(route.body).sort();
      expect(schema.type).toBe('object');
      expect([...schema.required!].sort()).toEqual(fields);
      expect(Object.keys(schema.properties!).sort()).toEqual(fields);
      for (const [field, lengths] of Object.entries(route.body)) {
        const property = schema.properties![field]!;
        expect(property.type).toBe('string');
        expect({ minLength: property.minLength, maxLength: property.maxLength }).toEqual({ minLength: lengths.minLength, maxLength: lengths.maxLength });
      }
      // Swagger UI fills "Try it out" from the example: it must be a complete, valid body.
      expect(Object.keys(example as object).sort()).toEqual(fields);
      for (const [field, lengths] of Object.entries(route.body)) {
        const value = (example as Record<string, string>)[field]!;
        expect(value.length).toBeGreaterThanOrEqual(lengths.minLength ?? 1);
        expect(value.length).toBeLessThanOrEqual(lengths.maxLength ?? Infinity);
      }
    },
  );

  it.each(ROUTES.map((route) => [route.method, route.path, route] as const))(
    '%s %s documents its answers, each error with the codes it really answers and an example of each',
    async (method, path, route) => {
      const op = (await doc()).paths[path]![method]!;
      expect(Object.keys(op.responses).map(Number).sort()).toEqual(Object.keys(route.answers).map(Number).sort());
      for (const [status, codes] of Object.entries(route.answers)) {
        const response = op.responses[status]!;
        expect(response.description.length).toBeGreaterThan(0);
        if (status === '204') {
          expect(response.content).toBeUndefined();
          continue;
        }
        const media = response.content!['application/json']!;
        if (Number(status) < 400) continue;
        expect(Object.keys(media.schema.properties!).sort()).toEqual(['error', 'message']);
        expect(codesOf(media.schema).sort()).toEqual([...codes].sort());
        const examples = media.schema.examples as Array<{ error: string; message: string }>;
        expect(examples.map((example) => example.error).sort()).toEqual([...codes].sort());
        for (const example of examples) {
          expect(example.message.length).toBeGreaterThan(0);
          const exact = example.error === 'not_found' && path.startsWith('/api/v1/tunnels') ? 'Tunnel not found' : EXACT_MESSAGES[example.error];
          if (exact !== undefined) expect(example.message).toBe(exact);
        }
        // Several codes under one status: each is its own entry in Swagger UI's example picker.
        if (codes.length > 1) expect(Object.keys(media.examples!).sort()).toEqual([...codes].sort());
      }
    },
  );

  it('documents WWW-Authenticate on 401 and Retry-After on 429', async () => {
    const op = (await doc()).paths['/api/v1/api-keys']!.get!;
    expect(Object.keys(op.responses['401']!.headers!)).toEqual(['WWW-Authenticate']);
    expect(Object.keys(op.responses['429']!.headers!)).toEqual(['Retry-After']);
  });

  it('is the same document after every route has answered its successes and its errors', async () => {
    // Elysia marks a response schema `additionalProperties: false` in place the first time it checks an
    // answer against it, and the schemas are shared between routes and apps: undeclared, the document
    // changed with the traffic that came before it. A process of its own, so that no earlier test has
    // answered anything.
    const run = Bun.spawn([process.execPath, join(import.meta.dir, 'fixtures', 'document-after-traffic.ts')], { stdout: 'pipe', stderr: 'pipe' });
    const [out, err, code] = await Promise.all([new Response(run.stdout).text(), new Response(run.stderr).text(), run.exited]);
    expect({ code, err }).toEqual({ code: 0, err: '' });
    const { answers, served, fresh } = JSON.parse(out) as { answers: number; served: string[]; fresh: string[] };
    expect(answers).toBeGreaterThan(100);
    expect({ served, fresh }).toEqual({ served: [], fresh: [] });
  });

  it('documents the integers it answers as integers, not as "a string or an integer"', async () => {
    const d = await doc();
    const tunnel = d.paths['/api/v1/tunnels']!.get!.responses['200']!.content!['application/json']!.schema as Schema & { items: Schema };
    const fields = tunnel.items.properties!;
    const retryAfter = (d.paths['/api/v1/api-keys']!.get!.responses['429']!.headers!['Retry-After'] as { schema: Record<string, unknown> }).schema;
    const integers: Array<[string, Record<string, unknown>]> = [
      ...['local_port', 'bytes_in', 'bytes_out', 'request_count', 'active_streams'].map((name): [string, Record<string, unknown>] => [name, fields[name] as Record<string, unknown>]),
      ['Retry-After', retryAfter],
    ];
    for (const [name, schema] of integers) {
      expect({ name, type: schema.type, anyOf: schema.anyOf }).toEqual({ name, type: 'integer', anyOf: undefined });
    }
    expect(fields.local_port).toMatchObject({ minimum: 1, maximum: 65535 });
    expect(retryAfter).toMatchObject({ minimum: 1 });
  });
});

describe('the documented examples', () => {
  /** Checks that what `send` gets back is exactly the example `code` has on that route. */
  async function expectDocumented(d: Document, method: string, path: string, code: string, send: () => Promise<Response>) {
    const documented = exampleOf(d.paths[path]![method]!, code);
    expect(documented).toBeDefined();
    const res = await send();
    expect(await res.json()).toEqual(documented!);
  }

  it('are what register, login and the body checks really answer', async () => {
    const t = makeTestApp();
    const d = await doc(t);
    const path = '/api/v1/auth/register';
    await expectDocumented(d, 'post', path, 'validation_error', () => t.request('POST', path, { json: {} }));
    await expectDocumented(d, 'post', path, 'weak_password', () => t.request('POST', path, { json: { email: 'short@example.com', password: 'short' } }));
    await expectDocumented(d, 'post', path, 'unsupported_media_type', () => t.request('POST', path, { body: 'email=a', headers: { 'content-type': 'text/plain' } }));
    await expectDocumented(d, 'post', path, 'payload_too_large', () => t.request('POST', path, { json: { email: 'x'.repeat(70_000), password: 'x' } }));
    await expectDocumented(d, 'post', '/api/v1/auth/login', 'invalid_credentials', () =>
      t.request('POST', '/api/v1/auth/login', { json: { email: 'nobody@example.com', password: 'correct-zebra-staple-91' } }),
    );
  });

  it('are what the password change and the key routes really answer', async () => {
    const t = makeTestApp();
    const d = await doc(t);
    const { token, key } = await t.registerWithKey();
    const password = '/api/v1/users/me/password';
    await expectDocumented(d, 'put', password, 'validation_error', () => t.request('PUT', password, { json: {}, token }));
    await expectDocumented(d, 'put', password, 'weak_password', () => t.request('PUT', password, { json: { current_password: 'x', new_password: 'short' }, token }));
    await expectDocumented(d, 'put', password, 'forbidden', () => t.request('PUT', password, { json: {}, token: key }));
    await expectDocumented(d, 'post', '/api/v1/api-keys', 'validation_error', () => t.request('POST', '/api/v1/api-keys', { json: {}, token }));
    await expectDocumented(d, 'delete', '/api/v1/api-keys/{id}', 'not_found', () => t.request('DELETE', `/api/v1/api-keys/${crypto.randomUUID()}`, { token }));
    await expectDocumented(d, 'get', '/api/v1/api-keys', 'unauthorized', () => t.request('GET', '/api/v1/api-keys'));
  });

  it('include the 204 of logout and key deletion, which answer with no body', async () => {
    const t = makeTestApp();
    const { token, keyId } = await t.registerWithKey();
    const deleted = await t.request('DELETE', `/api/v1/api-keys/${keyId}`, { token });
    expect(deleted.status).toBe(204);
    expect(await deleted.text()).toBe('');
    const loggedOut = await t.request('POST', '/api/v1/auth/logout', { token });
    expect(loggedOut.status).toBe(204);
    expect(await loggedOut.text()).toBe('');
  });
});

describe('Redocly lint', () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it('passes the served document with no errors and no warning but the absent licence', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'expose-redocly-'));
    dirs.push(dir);
    writeFileSync(join(dir, 'openapi.json'), JSON.stringify(await doc()));
    // Its recommended rules, offline: no telemetry, no update check. A temporary working directory,
    // so no redocly.yaml of the checkout can change the rules.
    const proc = Bun.spawn([process.execPath, join(import.meta.dir, '..', '..', 'node_modules', '@redocly', 'cli', 'bin', 'cli.js'), 'lint', 'openapi.json', '--format=json'], {
      cwd: dir,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true', NO_COLOR: '1' },
      stdout: 'pipe',
      stderr: 'pipe',
    });
    const [stdout, stderr] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    let report: { totals: { errors: number; warnings: number }; problems: Array<{ ruleId: string; severity: string; message: string }> };
    try {
      report = JSON.parse(stdout);
    } catch {
      throw new Error(`redocly did not report JSON:\n${stdout}\n${stderr}`);
    }
    expect(report.problems.filter((problem) => problem.severity === 'error')).toEqual([]);
    // The project states no licence, so the document cannot name one.
    expect(report.problems.filter((problem) => problem.ruleId !== 'info-license')).toEqual([]);
  }, 30_000);
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
