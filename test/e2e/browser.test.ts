/**
 * A real browser through a real tunnel, as a new user would try it: the server on tunnel domain
 * `localhost` (its default), `expose http` in front of a local origin, and headless Chromium opening
 * `http://<name>.localhost:<port>/`, which Chromium resolves to this machine by itself. The page's
 * script fetches JSON from its own origin and sets a cookie; the cookies come back to the origin.
 */
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { type Browser, chromium } from 'playwright-core';
import { cleanUp } from '../client/process.ts';
import { CHROMIUM_ARGS, ensureChromium } from '../helpers/chromium.ts';
import { type E2EServer, startClient, startE2EServer } from './harness.ts';

/** Launching Chromium and loading a page on a loaded machine. */
const BROWSER_TIMEOUT_MS = 30_000;
const SUBDOMAIN = 'browser-e2e';
/** A value only this run knows, so what the page shows can only have come from the origin through the tunnel. */
const TOKEN = crypto.randomUUID().slice(0, 8);

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>expose e2e</title></head>
<body>
<p id="data">loading</p>
<p id="cookies"></p>
<script>
(async () => {
  const res = await fetch('/api/data', { headers: { accept: 'application/json' } });
  const data = await res.json();
  document.cookie = 'from_script=js-' + data.token + '; path=/; SameSite=Lax';
  document.getElementById('data').textContent = data.message + ' #' + data.token;
  const seen = await (await fetch('/api/cookies')).json();
  document.getElementById('cookies').textContent = seen.cookie;
})().catch((error) => { document.getElementById('data').textContent = 'error: ' + error; })
  .finally(() => { document.body.dataset.done = '1'; });
</script>
</body></html>`;

/** The Cookie header of every request the origin got, by path. */
const cookiesSeen: { path: string; cookie: string | null }[] = [];
let origin: ReturnType<typeof Bun.serve>;
let server: E2EServer;
let publicUrl: string;

const chromiumStatus = await ensureChromium();
if ('missing' in chromiumStatus) console.warn(`SKIPPED tunnel browser test: ${chromiumStatus.missing}`);

describe.skipIf('missing' in chromiumStatus)('headless Chromium through a tunnel on *.localhost', () => {
  let browser: Browser;

  beforeAll(async () => {
    origin = Bun.serve({
      port: 0,
      hostname: '127.0.0.1',
      fetch(req) {
        const path = new URL(req.url).pathname;
        cookiesSeen.push({ path, cookie: req.headers.get('cookie') });
        switch (path) {
          case '/':
          case '/later':
            return new Response(PAGE, { headers: { 'content-type': 'text/html; charset=utf-8' } });
          case '/api/data':
            return Response.json(
              { message: 'hello through the tunnel', token: TOKEN },
              { headers: { 'set-cookie': `session=s-${TOKEN}; Path=/; HttpOnly; SameSite=Lax` } },
            );
          case '/api/cookies':
            return Response.json({ cookie: req.headers.get('cookie') });
          default:
            return new Response('not found', { status: 404 });
        }
      },
    });
    // The default tunnel domain, so the URL is the one the README's quick start gives.
    server = await startE2EServer({ EXPOSE_TUNNEL_DOMAIN: 'localhost' });
    const user = await server.newUser();
    const client = await startClient(server, user.key, SUBDOMAIN, origin.port!);
    publicUrl = String(client.ready.public_url);
    browser = await chromium.launch({
      executablePath: 'path' in chromiumStatus ? chromiumStatus.path : undefined,
      headless: true,
      args: [...CHROMIUM_ARGS, '--no-proxy-server'],
      timeout: BROWSER_TIMEOUT_MS,
    });
  }, BROWSER_TIMEOUT_MS);

  afterAll(async () => {
    await browser?.close();
    cleanUp();
    origin?.stop(true);
    expect(await server?.stop()).toBe('');
  });

  it(
    'renders data the page fetched from its origin, and the cookies it got come back to the origin on later requests',
    async () => {
      expect(publicUrl).toBe(`http://${SUBDOMAIN}.localhost:${server.port}`);
      const context = await browser.newContext();
      const page = await context.newPage();
      const response = await page.goto(`${publicUrl}/`, { waitUntil: 'load', timeout: BROWSER_TIMEOUT_MS });
      expect(response?.status()).toBe(200);
      await page.locator('body[data-done="1"]').waitFor({ timeout: BROWSER_TIMEOUT_MS });

      expect(await page.locator('#data').textContent()).toBe(`hello through the tunnel #${TOKEN}`);
      // The server's HttpOnly cookie and the script's cookie, both sent on the page's next fetch...
      const onFetch = await page.locator('#cookies').textContent();
      expect(onFetch).toContain(`session=s-${TOKEN}`);
      expect(onFetch).toContain(`from_script=js-${TOKEN}`);
      // ...which only the browser's jar can have done (the script cannot read an HttpOnly cookie).
      expect(await page.evaluate('document.cookie')).toBe(`from_script=js-${TOKEN}`);

      // A later navigation carries them to the origin too.
      await page.goto(`${publicUrl}/later`, { waitUntil: 'load', timeout: BROWSER_TIMEOUT_MS });
      const later = cookiesSeen.find((seen) => seen.path === '/later');
      expect(later?.cookie).toContain(`session=s-${TOKEN}`);
      expect(later?.cookie).toContain(`from_script=js-${TOKEN}`);
      // The first page load had none: the cookies came from this visit.
      expect(cookiesSeen.find((seen) => seen.path === '/')?.cookie).toBeNull();
      await context.close();
    },
    BROWSER_TIMEOUT_MS,
  );
});
