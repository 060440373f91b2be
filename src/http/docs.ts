/**
 * Swagger UI at /docs and the OpenAPI 3 document at /docs/json. The UI's script and stylesheet come
 * from the swagger-ui-dist package, embedded in the binary and served from /docs/assets, so the page
 * works with no internet access and loads nothing from any other host.
 */
import { Elysia } from 'elysia';
import { openapi } from '@elysiajs/openapi';
import { FormatRegistry } from '@sinclair/typebox';
import swaggerBundlePath from 'swagger-ui-dist/swagger-ui-bundle.js' with { type: 'file' };
import swaggerCssPath from 'swagger-ui-dist/swagger-ui.css' with { type: 'file' };
import { version } from '../../package.json';

// Importing @elysiajs/openapi replaces TypeBox's global `uuid` format check with one that builds a
// Zod schema on every call (tens of µs). Every answer carrying an id is checked against its response
// schema, so that alone cut GET /users/me throughput by half or more. Put back a plain pattern.
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

/** The docs routes: UI, document and the UI's own assets. Exempt from rate limits. */
export function docsPlugin() {
  return new Elysia({ name: 'http.docs' })
    .get(`${ASSETS}/swagger-ui-bundle.js`, asset(swaggerBundlePath, 'text/javascript; charset=utf-8'), { detail: { hide: true } })
    .get(`${ASSETS}/swagger-ui.css`, asset(swaggerCssPath, 'text/css; charset=utf-8'), { detail: { hide: true } })
    .use(
      openapi({
        path: '/docs',
        specPath: '/docs/json',
        provider: 'swagger-ui',
        swagger: {
          url: '/docs/json',
          cdn: `${ASSETS}/swagger-ui-bundle.js`,
          theme: `${ASSETS}/swagger-ui.css`,
          persistAuthorization: false,
        } as Record<string, unknown>,
        exclude: { paths: [/^\/docs/, /^\/api\/v1\/\*$/] },
        documentation: {
          info: { title: 'Expose server API', version, description: CREDENTIALS_HELP },
          tags: [
            { name: 'auth', description: 'Register, log in, log out' },
            { name: 'users', description: 'The calling account' },
            { name: 'api-keys', description: 'Keys for tunnels and scripts' },
            { name: 'health', description: 'Liveness' },
          ],
          components: {
            securitySchemes: {
              jwt: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'Session token from register or login' },
              apiKey: { type: 'http', scheme: 'bearer', bearerFormat: 'exp_k1_ API key', description: 'API key: read-only on the account' },
            },
          },
        },
      }),
    );
}
