/**
 * The most common use of a tunnel: a Vite dev server, opened in a browser through the tunnel, whose
 * page updates itself when a file changes. Real processes throughout: the server (tunnel domain
 * `localhost`), `expose http` with its default Host rewrite (Vite refuses a Host it does not know),
 * Vite on Node with a tiny project (no framework plugin), and headless Chromium on
 * `http://vite-hmr.localhost:PORT/`, which Chromium resolves to this machine by itself. Vite needs no
 * `server.hmr` setting: its client connects the HMR WebSocket to the page's own host and port, which
 * is the tunnel.
 */
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Browser, chromium } from 'playwright-core';
import { cleanUp } from '../client/process.ts';
import { CHROMIUM_ARGS, ensureChromium } from '../helpers/chromium.ts';
import { freePort } from '../helpers/free-port.ts';
import { type E2EClient, type E2EServer, OutputLog, startClient, startE2EServer, withTimeout } from './harness.ts';

/** Launching Chromium, Vite's first transform and a reload, on a loaded machine. */
const BROWSER_TIMEOUT_MS = 30_000;
const SUBDOMAIN = 'vite-hmr';
const ROOT = join(import.meta.dir, '..', '..');
/** Values only this run knows, so what the page shows can only have come from this Vite through the tunnel. */
const TOKEN = crypto.randomUUID().slice(0, 8);
const FIRST = `first value ${TOKEN}`;
const SECOND = `second value ${TOKEN}`;

const mainJs = (value: string) => `document.getElementById('value').textContent = ${JSON.stringify(value)};\n`;

const chromiumStatus = await ensureChromium();
if ('missing' in chromiumStatus) console.warn(`SKIPPED Vite HMR browser test: ${chromiumStatus.missing}`);

describe.skipIf('missing' in chromiumStatus)("a Vite dev server's hot reload through a tunnel, in headless Chromium", () => {
  let project: string;
  let vite: Bun.Subprocess<'ignore', 'pipe', 'pipe'>;
  let viteOutput: OutputLog;
  let vitePort: number;
  let server: E2EServer;
  let client: E2EClient;
  let browser: Browser;

  beforeAll(async () => {
    project = mkdtempSync(join(tmpdir(), 'expose-vite-'));
    writeFileSync(
      join(project, 'index.html'),
      `<!doctype html>\n<html><head><meta charset="utf-8"><title>vite through expose</title></head>\n<body><p id="value">not run yet</p><script type="module" src="/main.js"></script></body></html>\n`,
    );
    writeFileSync(join(project, 'main.js'), mainJs(FIRST));
    // Vite takes `--port 0` as "the default 5173", so a free port it must take or fail (--strictPort).
    vitePort = await freePort();
    vite = Bun.spawn(['node', join(ROOT, 'node_modules', '.bin', 'vite'), project, '--host', '127.0.0.1', '--port', String(vitePort), '--strictPort', '--clearScreen', 'false'], {
      cwd: project,
      env: { ...process.env, NO_COLOR: '1' },
      stdin: 'ignore',
      stdout: 'pipe',
      stderr: 'pipe',
    }) as Bun.Subprocess<'ignore', 'pipe', 'pipe'>;
    viteOutput = new OutputLog(vite.stdout);
    // Read too, so a chatty stderr can never fill its pipe and stall Vite.
    const viteErrors = new OutputLog(vite.stderr);
    await viteOutput.find((line) => line.includes(`127.0.0.1:${vitePort}`), 'Vite to listen', BROWSER_TIMEOUT_MS).catch((error: Error) => {
      throw new Error(`${error.message}\nVite's stderr:\n${viteErrors.text}`);
    });

    server = await startE2EServer({ EXPOSE_TUNNEL_DOMAIN: 'localhost' });
    const user = await server.newUser();
    client = await startClient(server, user.key, SUBDOMAIN, vitePort);
    browser = await chromium.launch({
      executablePath: 'path' in chromiumStatus ? chromiumStatus.path : undefined,
      headless: true,
      args: [...CHROMIUM_ARGS, '--no-proxy-server'],
      timeout: BROWSER_TIMEOUT_MS,
    });
  }, 2 * BROWSER_TIMEOUT_MS);

  afterAll(async () => {
    await browser?.close();
    cleanUp();
    vite?.kill('SIGKILL');
    await vite?.exited;
    if (project) rmSync(project, { recursive: true, force: true });
    expect(await server?.stop()).toBe('');
  });

  it(
    'shows the first value, and after main.js is edited on disk shows the new one without a manual reload, over an HMR WebSocket through the tunnel',
    async () => {
      const publicUrl = String(client.ready.public_url);
      expect(publicUrl).toBe(`http://${SUBDOMAIN}.localhost:${server.port}`);
      const context = await browser.newContext();
      const page = await context.newPage();
      const sockets: string[] = [];
      page.on('websocket', (socket) => sockets.push(socket.url()));
      const console_: string[] = [];
      page.on('console', (message) => console_.push(message.text()));
      const hmrConnected = page.waitForEvent('console', { predicate: (message) => message.text().includes('[vite] connected'), timeout: BROWSER_TIMEOUT_MS });

      const response = await page.goto(`${publicUrl}/`, { waitUntil: 'load', timeout: BROWSER_TIMEOUT_MS });
      expect(response?.status()).toBe(200);
      const value = page.locator('#value');
      await value.filter({ hasText: FIRST }).waitFor({ timeout: BROWSER_TIMEOUT_MS });
      const before = await value.textContent();
      await hmrConnected;

      const navigations: string[] = [];
      page.on('framenavigated', (frame) => {
        if (frame === page.mainFrame()) navigations.push(frame.url());
      });
      writeFileSync(join(project, 'main.js'), mainJs(SECOND));
      // Vite's watcher sees the edit and tells the page over the HMR socket: main.js accepts no hot
      // update, so Vite asks for a full reload, which the page does by itself.
      await value.filter({ hasText: SECOND }).waitFor({ timeout: BROWSER_TIMEOUT_MS });
      const after = await value.textContent();
      console.log(
        `Vite page through the tunnel: before the edit #value = ${JSON.stringify(before)}; after = ${JSON.stringify(after)};`,
        `reloaded by Vite ${navigations.length} time(s); WebSockets opened: ${JSON.stringify(sockets)}; console: ${JSON.stringify(console_.filter((text) => text.startsWith('[vite]')))}`,
      );
      expect(before).toBe(FIRST);
      expect(after).toBe(SECOND);

      // The HMR socket went to the page's own origin, the tunnel, never straight to Vite (its
      // client's fallback when the first connection fails).
      expect(sockets.length).toBeGreaterThan(0);
      for (const url of sockets) expect(url.startsWith(`ws://${SUBDOMAIN}.localhost:${server.port}/`)).toBe(true);
      expect(console_.some((text) => text.includes('Direct websocket connection fallback'))).toBe(false);
      await context.close();
      // ...and the client relayed it as a WebSocket (101), logged once it ended.
      const relayed = await withTimeout(client.stdout.event('request', { websocket: true, status: 101 }), 'the HMR WebSocket in the request log');
      expect(relayed.path).toBe('/');
    },
    2 * BROWSER_TIMEOUT_MS,
  );
});
