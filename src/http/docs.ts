/**
 * Swagger UI at /docs and the OpenAPI 3 document at /docs/json. The UI's script and stylesheet come
 * from the swagger-ui-dist package, embedded in the binary and served from /docs/assets, so the page
 * works with no internet access and loads nothing from any other host.
 */
import { Elysia } from 'elysia';
import { FormatRegistry } from '@sinclair/typebox';
import swaggerBundlePath from 'swagger-ui-dist/swagger-ui-bundle.js' with { type: 'file' };
import swaggerCssPath from 'swagger-ui-dist/swagger-ui.css' with { type: 'file' };
import { version } from '../../package.json';
import { applicationRoutes, type DocumentBase, openApiDocument } from './openapi-document.ts';

// The @elysiajs/openapi entry point (only its generator and page are imported here) replaces TypeBox's
// global `uuid` format check with one that builds a Zod schema on every call (tens of µs). Every answer
// carrying an id is checked against its response schema, so that alone cut GET /users/me throughput by
// half or more. Pin a plain pattern, whatever imports that entry point.
const UUID_FORMAT = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
FormatRegistry.Set('uuid', (value) => UUID_FORMAT.test(value));

const ASSETS = '/docs/assets';
const ONE_DAY_SECONDS = 86_400;

const CREDENTIALS_HELP = [
  'Self-hosted tunnel server: accounts, sessions and API keys.',
  '',
  'Two credentials, both sent in the Authorization header with the Bearer scheme:',
  '- **jwt**: the `token` from register or login (7 days; logout or a password change ends it).',
  '- **apiKey**: an `exp_k1_...` key from POST /api/v1/api-keys; it may read but not change the account.',
  '',
  'Every error answer is the JSON envelope with two strings, error (a code) and message.',
].join('\n');

function asset(path: string, contentType: string) {
  return () =>
    new Response(Bun.file(path), {
      headers: { 'Content-Type': contentType, 'Cache-Control': `public, max-age=${ONE_DAY_SECONDS}` },
    });
}

const DOCUMENT_BASE: DocumentBase = {
  info: { title: 'Expose server API', version, description: CREDENTIALS_HELP },
  // Relative: Swagger UI and generated clients call the host that served the document, whatever name
  // or proxy it was reached through.
  servers: [{ url: '/', description: 'The server that serves this document' }],
  tags: [
    { name: 'auth', description: 'Register, log in, log out' },
    { name: 'users', description: 'The calling account' },
    { name: 'api-keys', description: 'Keys for tunnels and scripts' },
    { name: 'tunnels', description: "The caller's live tunnels (the tunnel itself is a WebSocket at /api/v1/tunnel/connect, see the README)" },
    { name: 'health', description: 'Liveness' },
  ],
  securitySchemes: {
    jwt: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'Session token from register or login' },
    apiKey: { type: 'http', scheme: 'bearer', bearerFormat: 'exp_k1_ API key', description: 'API key: read-only on the account' },
  },
};

/** Left out of the document: the docs themselves and the catch-all that answers 404 to unknown routes. */
const EXCLUDE = { paths: [/^\/docs/, /^\/api\/v1\/\*$/] };

/** The docs routes: UI, document and the UI's own assets. Exempt from rate limits. */
export function docsPlugin() {
  // The page and the generator are loaded by the first request for them, not at every start.
  let page: string | undefined;
  const renderPage = async () => {
    const { SwaggerUIRender } = await import('@elysiajs/openapi/swagger');
    return SwaggerUIRender(DOCUMENT_BASE.info, {
      url: '/docs/json',
      dom_id: '#swagger-ui',
      cdn: `${ASSETS}/swagger-ui-bundle.js`,
      theme: `${ASSETS}/swagger-ui.css`,
      autoDarkMode: true,
      persistAuthorization: false,
    } as Parameters<typeof SwaggerUIRender>[1]);
  };
  const plugin = new Elysia({ name: 'http.docs' });
  // Built on the first request, once every route exists, and again only if routes were added since.
  let document: { routes: number; body: Awaited<ReturnType<typeof openApiDocument>> } | undefined;
  return plugin
    .get(`${ASSETS}/swagger-ui-bundle.js`, asset(swaggerBundlePath, 'text/javascript; charset=utf-8'), { detail: { hide: true } })
    .get(`${ASSETS}/swagger-ui.css`, asset(swaggerCssPath, 'text/css; charset=utf-8'), { detail: { hide: true } })
    .get('/docs', async () => new Response((page ??= await renderPage()), { headers: { 'Content-Type': 'text/html; charset=utf-8' } }), { detail: { hide: true } })
    .get(
      '/docs/json',
      async () => {
        const routes = applicationRoutes(plugin).length;
        if (document?.routes !== routes) document = { routes, body: await openApiDocument(plugin, DOCUMENT_BASE, EXCLUDE) };
        return document.body;
      },
      { detail: { hide: true } },
    );
}
