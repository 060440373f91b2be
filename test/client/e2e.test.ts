/**
 * End to end: the real server (in process, on 127.0.0.1:0), the real `expose` process, a real local
 * origin, and visitors sending requests by Host. Nothing of the relay is faked.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'bun:test';
import type { ServerWebSocket } from 'bun';
import { startTunnelServer, type TestUser, type TunnelTestServer } from '../helpers/tunnel.ts';
import { patternBytes, closedPort } from './helpers.ts';
import { Lines, cleanEnv, cleanUp, spawnClient } from './process.ts';

const GZIPPED = Bun.gzipSync(new TextEncoder().encode('compressed '.repeat(500)));
// Past the 16 MiB connection window, so the download needs the server's grants to finish.
const BIG = patternBytes(20 * 1024 * 1024 + 3);

let origin: ReturnType<typeof Bun.serve>;
beforeAll(() => {
  origin = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    async fetch(req) {
      const url = new URL(req.url);
      switch (url.pathname) {
        case '/upload':
          return new Response(req.body);
        case '/cookies': {
          const headers = new Headers();
          for (const cookie of ['a=1; Path=/', 'b=2; HttpOnly', 'c=3; SameSite=Lax']) headers.append('set-cookie', cookie);
          return new Response('ok', { headers });
        }
        case '/gzip':
          return new Response(GZIPPED, { headers: { 'content-encoding': 'gzip' } });
        case '/redirect':
          return new Response(null, { status: 302, headers: { location: '/elsewhere' } });
        case '/empty':
          return new Response(null, { status: 204 });
        case '/big':
          return new Response(BIG);
        default:
          return Response.json({ method: req.method, path: url.pathname + url.search, host: req.headers.get('host') });
      }
    },
  });
});
afterAll(() => origin.stop(true));

let server: TunnelTestServer;
let user: TestUser;
beforeAll(async () => {
  server = await startTunnelServer();
  user = await server.newUser();
});
afterAll(() => server.stop());
afterEach(cleanUp);

/** Starts `expose http` for `user` with --json; resolves once it printed its public URL. */
async function tunnel(port: number, subdomain: string, key = user.key, extraArgs: string[] = []) {
  const args = ['http', String(port), '--subdomain', subdomain, '--json', '--server', server.base, ...extraArgs];
  const child = spawnClient(args, cleanEnv({ EXPOSE_API_KEY: key }));
  const lines = new Lines(child.stdout);
  const ready = await lines.event('ready');
  return { child, lines, ready, host: `${subdomain}.expose.test` };
}

/** The tunnel's live session socket on the server, to cut it as a network failure would. */
function serverSocketOf(subdomain: string): ServerWebSocket<unknown> {
  const found = server.running.relay.registry.lookup(subdomain, Date.now());
  if (found.state !== 'live') throw new Error(`no live tunnel at ${subdomain}`);
  return (found.tunnel.session as unknown as { ws: ServerWebSocket<unknown> }).ws;
}

describe('expose http against the real server', () => {
  it('relays visitors to the local service: query, Host, bodies, cookies, gzip, redirects, 204', async () => {
    const { child, host, ready } = await tunnel(origin.port!, 'relay-e2e');
    expect(ready.public_url).toContain('relay-e2e.expose.test');

    const get = await server.visit(host, '/hello?x=1&y=2');
    expect(get.status).toBe(200);
    expect(await get.json()).toEqual({ method: 'GET', path: '/hello?x=1&y=2', host: `localhost:${origin.port}` });

    const upload = patternBytes(3 * 1024 * 1024 + 17);
    const echoed = await server.visit(host, '/upload', { method: 'POST', body: upload });
    expect(Buffer.from(await echoed.arrayBuffer()).equals(Buffer.from(upload))).toBe(true);

    const cookies = await server.visit(host, '/cookies');
    expect(cookies.headers.getSetCookie()).toEqual(['a=1; Path=/', 'b=2; HttpOnly', 'c=3; SameSite=Lax']);

    const gzip = await server.visit(host, '/gzip', { headers: { 'accept-encoding': 'gzip' }, decompress: false } as Parameters<TunnelTestServer['visit']>[2]);
    expect(gzip.headers.get('content-encoding')).toBe('gzip');
    expect(Buffer.from(await gzip.arrayBuffer()).equals(Buffer.from(GZIPPED))).toBe(true);

    const redirect = await server.visit(host, '/redirect', { redirect: 'manual' });
    expect(redirect.status).toBe(302);
    expect(redirect.headers.get('location')).toBe('/elsewhere');

    expect((await server.visit(host, '/empty')).status).toBe(204);
    child.kill('SIGINT');
    expect(await child.exited).toBe(0);
  });

  it("keeps the visitor's Host with --host-header preserve", async () => {
    const { child, host } = await tunnel(origin.port!, 'preserve-e2e', user.key, ['--host-header', 'preserve']);
    expect(((await (await server.visit(host, '/')).json()) as { host: string }).host).toBe(host);
    child.kill('SIGINT');
    expect(await child.exited).toBe(0);
  });

  it('carries a download past the connection window and 30 requests at once, within the flow-control windows', async () => {
    const { child, host } = await tunnel(origin.port!, 'bulk-e2e');
    const [download, ...small] = await Promise.all([
      server.visit(host, '/big').then(async (res) => new Uint8Array(await res.arrayBuffer())),
      ...Array.from({ length: 30 }, (_, i) => server.visit(host, `/n/${i}`).then((res) => res.json())),
    ]);
    expect(download!.byteLength).toBe(BIG.byteLength);
    expect(Buffer.from(download as Uint8Array).equals(Buffer.from(BIG))).toBe(true);
    expect(small.map((body) => (body as { path: string }).path)).toEqual(Array.from({ length: 30 }, (_, i) => `/n/${i}`));
    // A window overrun would have been a protocol error (4002) and a reconnect: still the first connection.
    expect(child.exitCode).toBeNull();
    expect(server.logs.some((line) => line.includes('protocol error'))).toBe(false);
  });

  it('answers 502 through StreamError when the local service is down, and keeps running', async () => {
    const { child, host, lines } = await tunnel(closedPort(), 'down-e2e');
    for (let i = 0; i < 2; i++) {
      const res = await server.visit(host, '/', { headers: { accept: 'application/json' } });
      expect(res.status).toBe(502);
      expect(res.headers.get('x-expose-error')).toBe('tunnel_error');
      expect(await lines.event('request')).toMatchObject({ status: 502, error: 'Connection refused' });
    }
    expect(child.exitCode).toBeNull();
  });

  it('frees the subdomain at once on Ctrl-C', async () => {
    const { child, host } = await tunnel(origin.port!, 'ctrlc-e2e');
    expect((await server.visit(host, '/')).status).toBe(200);
    child.kill('SIGINT');
    expect(await child.exited).toBe(0);
    const after = await server.visit(host, '/', { headers: { accept: 'application/json' } });
    expect(after.status).toBe(404);
    expect(after.headers.get('x-expose-error')).toBe('tunnel_not_found');
  });

  it('reconnects after its connection is cut and gets the same subdomain back with its resume_token', async () => {
    const { child, host, lines } = await tunnel(origin.port!, 'resume-e2e');
    serverSocketOf('resume-e2e').terminate();
    expect(await lines.event('state')).toMatchObject({ state: 'Disconnected', detail: 'connection lost' });
    const again = await lines.event('ready');
    expect(again.subdomain).toBe('resume-e2e');
    const res = await server.visit(host, '/back');
    expect(res.status).toBe(200);
    expect(child.exitCode).toBeNull();
  });

  it('exits 1 with "API key revoked" within a second of the key being deleted', async () => {
    const key = await server.newKey(user.token);
    const { child } = await tunnel(origin.port!, 'revoke-e2e', key.key);
    const startedMs = performance.now();
    expect((await server.api('DELETE', `/api/v1/api-keys/${key.keyId}`, { credential: user.token })).status).toBe(204);
    const [exitCode, stderr] = await Promise.all([child.exited, new Response(child.stderr).text()]);
    expect(performance.now() - startedMs).toBeLessThan(1500);
    expect(exitCode).toBe(1);
    expect(stderr).toBe('expose: API key revoked\n');
  });

  it('exits 1 with "tunnel closed by its owner" on DELETE /api/v1/tunnels/{id}', async () => {
    const { child, ready } = await tunnel(origin.port!, 'owner-e2e');
    expect((await server.api('DELETE', `/api/v1/tunnels/${ready.tunnel_id}`, { credential: user.token })).status).toBe(204);
    const [exitCode, stderr] = await Promise.all([child.exited, new Response(child.stderr).text()]);
    expect(exitCode).toBe(1);
    expect(stderr).toBe('expose: tunnel closed by its owner\n');
  });

  it('exits 1 when a newer client takes over its subdomain', async () => {
    const first = await tunnel(origin.port!, 'replace-e2e');
    const second = await tunnel(origin.port!, 'replace-e2e');
    const [exitCode, stderr] = await Promise.all([first.child.exited, new Response(first.child.stderr).text()]);
    expect(exitCode).toBe(1);
    expect(stderr).toBe('expose: replaced by a newer connection for the same subdomain\n');
    expect((await server.visit(second.host, '/')).status).toBe(200);
  });
});
