/**
 * /docs as the compiled binary serves it with no internet access: the page and every asset it names
 * come from the binary, the OpenAPI document is valid, and Swagger UI works in a real headless
 * Chromium ("Try it out" with a bearer token) without a single request to another host.
 */
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { join } from 'node:path';
import SwaggerParser from '@apidevtools/swagger-parser';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { CHROMIUM_ARGS, ensureChromium } from './helpers/chromium.ts';
import { BINARY_TEST_PASSWORD, ServerProcess, installBinary, jsonRequest, removeTempDirs, tempDir } from './helpers/binary.ts';

const BUILD_TIMEOUT_MS = 120_000;
const BROWSER_TIMEOUT_MS = 60_000;
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

  it('answers 200 to "Try it out" on GET /api/v1/users/me with a bearer token', async () => {
    const email = 'swagger@example.com';
    const registered = await server.fetch('/api/v1/auth/register', jsonRequest('POST', { email, password: BINARY_TEST_PASSWORD }));
    expect(registered.status).toBe(201);
    const { token } = (await registered.json()) as { token: string };

    const { page, requests } = await openDocs();
    await page.locator('.auth-wrapper .authorize').click();
    const jwtScheme = page.locator('.auth-container').filter({ hasText: 'jwt' });
    await jwtScheme.locator('input').fill(token);
    await jwtScheme.locator('button.authorize').click();
    await page.locator('.modal-ux .close-modal').click();

    const operation = page.locator('.opblock-get').filter({ has: page.locator('[data-path="/api/v1/users/me"]') });
    await operation.locator('.opblock-summary').click();
    await operation.locator('.try-out__btn').click();
    const [apiResponse] = await Promise.all([
      page.waitForResponse((response) => new URL(response.url()).pathname === '/api/v1/users/me'),
      operation.locator('.execute').click(),
    ]);
    expect(apiResponse.status()).toBe(200);
    expect(await apiResponse.request().headerValue('authorization')).toBe(`Bearer ${token}`);

    const shownStatus = operation.locator('.live-responses-table tr.response .response-col_status').first();
    await shownStatus.waitFor({ timeout: BROWSER_TIMEOUT_MS });
    expect((await shownStatus.textContent())?.trim()).toBe('200');
    expect(await operation.locator('.live-responses-table').textContent()).toContain(email);
    await page.close();
    expectOnlyThisServer(requests);
  }, BROWSER_TIMEOUT_MS);
});
