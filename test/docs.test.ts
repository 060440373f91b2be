/**
 * /docs as the compiled binary serves it with no internet access: the page and every asset it names
 * come from the binary, the OpenAPI document is valid, and Swagger UI works in a real headless
 * Chromium without a single request to another host: "Try it out" registers, logs in, authorizes with
 * the token, creates a key and changes the password, all through the page's own forms.
 */
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { join } from 'node:path';
import SwaggerParser from '@apidevtools/swagger-parser';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { CHROMIUM_ARGS, ensureChromium } from './helpers/chromium.ts';
import { BINARY_TEST_PASSWORD, ServerProcess, installBinary, jsonRequest, removeTempDirs, tempDir } from './helpers/binary.ts';

const BUILD_TIMEOUT_MS = 120_000;
const BROWSER_TIMEOUT_MS = 60_000;
/** The body editor appears as "Try it out" is pressed; waiting longer only delays a failure. */
const EDITOR_TIMEOUT_MS = 10_000;
/** A name that is not localhost, so nothing in the page can get away with treating us as local. */
const DOCS_HOST = 'expose.test';

type OpenApiDocument = { openapi: string; paths: Record<string, Record<string, { operationId?: string; tags?: string[] }>> };

let server: ServerProcess;
beforeAll(async () => {
  const { binary, dir } = await installBinary();
  server = await ServerProcess.start(binary, { cwd: dir, env: { EXPOSE_DB: join(tempDir('expose-docs-'), 'expose.db') } });
}, BUILD_TIMEOUT_MS);

afterAll(async () => {
  if (server) expect(await server.stop()).toBe(0);
  removeTempDirs();
});

async function openApiDocument(): Promise<OpenApiDocument> {
  const res = await server.fetch('/docs/json');
  expect(res.status).toBe(200);
  return (await res.json()) as OpenApiDocument;
}

describe('GET /docs from the binary', () => {
  it('is a page with no http(s) URL in it, whose every script and stylesheet the binary serves itself', async () => {
    const res = await server.fetch('/docs');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/html');
    const html = await res.text();
    expect(html).not.toMatch(/https?:\/\//i);

    const references = [...html.matchAll(/\b(?:src|href)\s*=\s*["']([^"']+)["']/gi)].map((match) => match[1]!);
    expect(references.length).toBeGreaterThanOrEqual(2);
    for (const reference of references) {
      // Same-origin paths only: no scheme, no protocol-relative //host.
      expect(reference).toMatch(/^\/[^/]/);
      const asset = await server.fetch(reference);
      expect(asset.status).toBe(200);
      expect(asset.headers.get('content-type')).toMatch(/javascript|css/);
      expect((await asset.arrayBuffer()).byteLength).toBeGreaterThan(10_000);
    }
    expect(references.some((reference) => reference.endsWith('.js'))).toBe(true);
    expect(references.some((reference) => reference.endsWith('.css'))).toBe(true);
  });

  it('points Swagger UI at the OpenAPI document on the same origin, which swagger-parser validates', async () => {
    const html = await (await server.fetch('/docs')).text();
    expect(html).toContain('"url":"/docs/json"');
    const document = await openApiDocument();
    expect(document.openapi).toStartWith('3.');
    // validate() dereferences in place; hand it a copy.
    const validated = (await SwaggerParser.validate(structuredClone(document) as never)) as unknown as OpenApiDocument;
    expect(Object.keys(validated.paths)).toContain('/api/v1/users/me');
  });
});

// Chromium is looked up (and installed when possible) before the tests are declared, so a machine that
// cannot have it skips them visibly instead of failing.
const chromiumStatus = await ensureChromium();
if ('missing' in chromiumStatus) console.warn(`SKIPPED Swagger UI browser tests: ${chromiumStatus.missing}`);

describe.skipIf('missing' in chromiumStatus)('Swagger UI in headless Chromium', () => {
  let context: BrowserContext;
  /** Every URL the browser asked for, from any page or worker. */
  const requested: string[] = [];

  beforeAll(async () => {
    context = await chromium.launchPersistentContext(tempDir('expose-chromium-'), {
      executablePath: 'path' in chromiumStatus ? chromiumStatus.path : undefined,
      headless: true,
      args: [...CHROMIUM_ARGS, '--no-proxy-server', `--host-resolver-rules=MAP ${DOCS_HOST} 127.0.0.1`],
      timeout: BROWSER_TIMEOUT_MS,
    });
    context.on('request', (request) => void requested.push(request.url()));
  }, BROWSER_TIMEOUT_MS);

  afterAll(async () => {
    await context?.close();
  });

  /** Opens /docs and resolves once Swagger UI drew its operations; `requests` collects what that page asks for. */
  async function openDocs(): Promise<{ page: Page; requests: string[] }> {
    const page = await context.newPage();
    const requests: string[] = [];
    page.on('request', (request) => void requests.push(request.url()));
    await page.goto(`http://${DOCS_HOST}:${server.port}/docs`, { waitUntil: 'load' });
    await page.locator('.opblock').first().waitFor({ timeout: BROWSER_TIMEOUT_MS });
    return { page, requests };
  }

  /** data: and blob: URLs are the page's own bytes; anything else must be this server. */
  function expectOnlyThisServer(requests: string[]) {
    const origin = `http://${DOCS_HOST}:${server.port}/`;
    expect(requests.filter((url) => !url.startsWith(origin) && !/^(data|blob):/.test(url))).toEqual([]);
    expect(requested.filter((url) => !url.startsWith(origin) && !/^(data|blob):/.test(url))).toEqual([]);
  }

  it('renders every operation of the OpenAPI document', async () => {
    const document = await openApiDocument();
    const expected = Object.entries(document.paths).flatMap(([path, operations]) => Object.keys(operations).map((method) => `${method} ${path}`));
    const { page, requests } = await openDocs();
    const rendered = await page.locator('.opblock').evaluateAll((blocks) =>
      blocks.map((block) => {
        const method = block.querySelector('.opblock-summary-method')?.textContent?.toLowerCase();
        const path = block.querySelector('.opblock-summary-path')?.getAttribute('data-path');
        return `${method} ${path}`;
      }),
    );
    expect(rendered.sort()).toEqual(expected.sort());
    expect(requests.some((url) => url.endsWith('/docs/json'))).toBe(true);
    expect(requests.some((url) => url.endsWith('/docs/assets/swagger-ui-bundle.js'))).toBe(true);
    await page.close();
    expectOnlyThisServer(requests);
  }, BROWSER_TIMEOUT_MS);

  /** Signs Swagger UI in with `token` through its Authorize dialog, as the `jwt` scheme. */
  async function authorize(page: Page, token: string) {
    await page.locator('.auth-wrapper .authorize').click();
    const jwtScheme = page.locator('.auth-container').filter({ hasText: 'jwt' });
    await jwtScheme.locator('input').fill(token);
    await jwtScheme.locator('button.authorize').click();
    await page.locator('.modal-ux .close-modal').click();
  }

  /** What "Try it out" did: the body editor's first content, the request, the answer, and what the page shows. */
  interface TryItOut {
    prefilled: unknown;
    authorization: string | null;
    contentType: string | null;
    status: number;
    body: any;
    shownStatus: string;
    shown: string;
  }

  /**
   * Opens `method path`, presses "Try it out", replaces the body editor's content with `body` (when
   * given; the editor must exist and hold the documented example), presses Execute, and waits until
   * the page shows the answer.
   */
  async function tryItOut(page: Page, method: string, path: string, body?: unknown): Promise<TryItOut> {
    const operation = page.locator(`.opblock-${method}`).filter({ has: page.locator(`[data-path="${path}"]`) });
    await operation.locator('.opblock-summary').click();
    await operation.locator('.try-out__btn').click();
    let prefilled: unknown;
    if (body !== undefined) {
      const editor = operation.locator('textarea.body-param__text');
      // Fail fast where a document gives Swagger UI no body to edit (it then draws no editor at all).
      await editor.waitFor({ timeout: EDITOR_TIMEOUT_MS });
      prefilled = JSON.parse(await editor.inputValue());
      await editor.fill(JSON.stringify(body));
    }
    const [response] = await Promise.all([
      page.waitForResponse((answer) => new URL(answer.url()).pathname === path && answer.request().method() === method.toUpperCase()),
      operation.locator('.execute').click(),
    ]);
    const shownStatus = operation.locator('.live-responses-table tr.response .response-col_status').first();
    await shownStatus.waitFor({ timeout: BROWSER_TIMEOUT_MS });
    const text = await response.text();
    return {
      prefilled,
      authorization: await response.request().headerValue('authorization'),
      contentType: await response.request().headerValue('content-type'),
      status: response.status(),
      body: text === '' ? undefined : JSON.parse(text),
      shownStatus: (await shownStatus.textContent())?.trim() ?? '',
      shown: (await operation.locator('.live-responses-table').textContent()) ?? '',
    };
  }

  it('answers 200 to "Try it out" on GET /api/v1/users/me with a bearer token', async () => {
    const email = 'swagger@example.com';
    const registered = await server.fetch('/api/v1/auth/register', jsonRequest('POST', { email, password: BINARY_TEST_PASSWORD }));
    expect(registered.status).toBe(201);
    const { token } = (await registered.json()) as { token: string };

    const { page, requests } = await openDocs();
    await authorize(page, token);
    const me = await tryItOut(page, 'get', '/api/v1/users/me');
    expect(me.status).toBe(200);
    expect(me.authorization).toBe(`Bearer ${token}`);
    expect(me.shownStatus).toBe('200');
    expect(me.shown).toContain(email);
    await page.close();
    expectOnlyThisServer(requests);
  }, BROWSER_TIMEOUT_MS);

  it('registers, logs in, creates an API key and changes the password through "Try it out"', async () => {
    const email = 'try-it-out@example.com';
    const newPassword = 'violet-anchor-lantern-58';
    const { page, requests } = await openDocs();

    const registered = await tryItOut(page, 'post', '/api/v1/auth/register', { email, password: BINARY_TEST_PASSWORD });
    // The editor opened on the documented example: a body that only needs its values changed.
    expect(Object.keys(registered.prefilled as object).sort()).toEqual(['email', 'password']);
    expect(registered.contentType).toBe('application/json');
    expect([registered.status, registered.shownStatus]).toEqual([201, '201']);
    expect(registered.body.user.email).toBe(email);
    expect(registered.shown).toContain(email);

    const loggedIn = await tryItOut(page, 'post', '/api/v1/auth/login', { email, password: BINARY_TEST_PASSWORD });
    expect([loggedIn.status, loggedIn.shownStatus]).toEqual([200, '200']);
    expect(loggedIn.body).toEqual({ user: registered.body.user, token: expect.any(String) });
    const token = loggedIn.body.token as string;

    await authorize(page, token);
    const created = await tryItOut(page, 'post', '/api/v1/api-keys', { name: 'from Swagger UI' });
    expect(Object.keys(created.prefilled as object)).toEqual(['name']);
    expect(created.authorization).toBe(`Bearer ${token}`);
    expect([created.status, created.shownStatus]).toEqual([201, '201']);
    expect(created.body.api_key.name).toBe('from Swagger UI');
    expect(created.body.key).toMatch(/^exp_k1_[0-9a-f]{48}$/);
    expect(created.shown).toContain(created.body.key);

    const changed = await tryItOut(page, 'put', '/api/v1/users/me/password', { current_password: BINARY_TEST_PASSWORD, new_password: newPassword });
    expect(Object.keys(changed.prefilled as object).sort()).toEqual(['current_password', 'new_password']);
    expect(changed.authorization).toBe(`Bearer ${token}`);
    expect([changed.status, changed.shownStatus]).toEqual([200, '200']);
    expect(changed.body).toEqual({ message: 'Password updated successfully' });
    await page.close();
    expectOnlyThisServer(requests);

    // What the page did is real: the new password logs in, and the key it made authenticates.
    expect((await server.fetch('/api/v1/auth/login', jsonRequest('POST', { email, password: newPassword }))).status).toBe(200);
    expect((await server.fetch('/api/v1/users/me', jsonRequest('GET', undefined, created.body.key))).status).toBe(200);
  }, BROWSER_TIMEOUT_MS);
});
