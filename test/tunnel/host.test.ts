/** Host routing: the normalisation table, then the same rules through a real socket (tunnel side vs API side). */
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { HostRouter, normaliseHost, routeHost } from '../../src/tunnel/host.ts';
import { DOMAIN, rawHttp, type ScriptedClient, startTunnelServer, type TunnelTestServer } from '../helpers/tunnel.ts';

describe('normaliseHost', () => {
  const table: [string, string][] = [
    ['MyApp.Expose.Test', 'myapp.expose.test'],
    ['myapp.expose.test.', 'myapp.expose.test'],
    ['myapp.expose.test:8080', 'myapp.expose.test'],
    ['myapp.expose.test.:8080', 'myapp.expose.test'],
    ['myapp.expose.test..', 'myapp.expose.test.'],
    ['  myapp.expose.test  ', 'myapp.expose.test'],
    ['[::1]:3000', '[::1]'],
    ['[2001:DB8::1]', '[2001:db8::1]'],
    ['127.0.0.1:3000', '127.0.0.1'],
  ];
  for (const [input, expected] of table) {
    it(`turns ${JSON.stringify(input)} into ${JSON.stringify(expected)}`, () => {
      expect(normaliseHost(input)).toBe(expected);
    });
  }
});

describe('routeHost', () => {
  const tunnel = (subdomain: string | null) => ({ side: 'tunnel', subdomain });
  const api = { side: 'api' };
  const table: [string | null, object][] = [
    ['myapp.expose.test', tunnel('myapp')],
    ['MYAPP.EXPOSE.TEST', tunnel('myapp')],
    ['myapp.expose.test.', tunnel('myapp')],
    ['myapp.expose.test:3000', tunnel('myapp')],
    ['MyApp.Expose.Test.:443', tunnel('myapp')],
    ['brave-otter-3f9a.expose.test', tunnel('brave-otter-3f9a')],
    // Under the tunnel domain but naming no valid tunnel: the tunnel side answers 404, never the API.
    ['a.b.expose.test', tunnel(null)],
    ['deep.er.name.expose.test', tunnel(null)],
    ['ab.expose.test', tunnel(null)],
    ['my_app.expose.test', tunnel(null)],
    ['-myapp.expose.test', tunnel(null)],
    ['myapp-.expose.test', tunnel(null)],
    [`${'a'.repeat(64)}.expose.test`, tunnel(null)],
    ['<script>.expose.test', tunnel(null)],
    ['.expose.test', api],
    // Everything else is the API.
    ['expose.test', api],
    ['expose.test.', api],
    ['EXPOSE.TEST:80', api],
    ['myappexpose.test', api],
    ['myapp.expose.test..', api],
    ['myapp.expose.test.evil.example', api],
    ['expose.test.myapp.example', api],
    ['127.0.0.1:3000', api],
    ['[::1]:3000', api],
    ['[::1]', api],
    ['localhost', api],
    ['', api],
    [null, api],
  ];
  for (const [host, expected] of table) {
    it(`routes ${JSON.stringify(host)} to ${JSON.stringify(expected)}`, () => {
      expect(routeHost(host, DOMAIN)).toEqual(expected as never);
    });
  }

  it('routes every host of the table the same through HostRouter, first seen or remembered, in any order', () => {
    const router = new HostRouter(DOMAIN);
    for (let round = 0; round < 3; round++) {
      const order = round === 1 ? [...table].reverse() : table;
      for (const [host, expected] of order) expect({ host, route: router.route(host) }).toEqual({ host, route: expected as never });
    }
  });

  it('keeps HostRouter bounded under a flood of made-up hosts, and still right after it', () => {
    const router = new HostRouter(DOMAIN);
    for (let i = 0; i < 5000; i++) router.route(`x${i}.expose.test`);
    expect((router as unknown as { memo: Map<string, unknown> }).memo.size).toBeLessThanOrEqual(1024);
    expect(router.route('myapp.expose.test')).toEqual({ side: 'tunnel', subdomain: 'myapp' });
    expect(router.route('expose.test')).toEqual({ side: 'api' });
  });
});

describe('Host routing on the socket', () => {
  let server: TunnelTestServer;
  let client: ScriptedClient;
  const paths: string[] = [];

  beforeAll(async () => {
    server = await startTunnelServer();
    const user = await server.newUser();
    ({ client } = await server.tunnel(user.key, 'myapp'));
    client.serve((request) => {
      paths.push(request.path);
      return { status: 200, headers: [['content-type', 'text/plain'], ['x-from', 'tunnel']], body: `tunnel saw ${request.path}` };
    });
  });
  afterAll(async () => {
    expect(server.errorLogs()).toEqual([]);
    await server.stop();
  });

  for (const host of ['MyApp.Expose.Test', 'myapp.expose.test.', 'myapp.expose.test:8080', 'MYAPP.expose.test.:80']) {
    it(`relays a request with Host ${JSON.stringify(host)} to the tunnel`, async () => {
      const res = await server.visit(host, '/where');
      expect(res.status).toBe(200);
      expect(res.headers.get('x-from')).toBe('tunnel');
      expect(await res.text()).toBe('tunnel saw /where');
    });
  }

  for (const host of ['a.myapp.expose.test', 'my_app.expose.test', 'ab.expose.test']) {
    it(`answers 404 tunnel_not_found on the tunnel side for Host ${JSON.stringify(host)}`, async () => {
      const before = paths.length;
      const res = await server.visit(host, '/api/v1/users/me', { headers: { accept: 'application/json' } });
      expect(res.status).toBe(404);
      expect(res.headers.get('x-expose-error')).toBe('tunnel_not_found');
      expect(await res.json()).toEqual({ error: 'tunnel_not_found', message: expect.any(String) });
      expect(paths.length).toBe(before);
    });
  }

  it('sends a request without Host (HTTP/1.0) to the API', async () => {
    const res = await rawHttp(server.port, 'GET /health HTTP/1.0\r\n\r\n');
    expect(res.status).toBe(200);
    expect(res.header('x-expose-error')).toBeUndefined();
  });

  it('sends a request with an IPv6 Host to the API', async () => {
    const res = await rawHttp(server.port, 'GET /health HTTP/1.1\r\nHost: [::1]:3000\r\nConnection: close\r\n\r\n');
    expect(res.status).toBe(200);
    expect(res.header('x-expose-error')).toBeUndefined();
  });

  it('routes an absolute-form request by its Host header, relaying the path and query only', async () => {
    const res = await rawHttp(server.port, 'GET http://127.0.0.1/abs?x=1 HTTP/1.1\r\nHost: myapp.expose.test\r\nConnection: close\r\n\r\n');
    expect(res.status).toBe(200);
    expect(res.body).toBe('tunnel saw /abs?x=1');
  });

  it('never reaches a tunnel through an absolute-form target on the API host', async () => {
    const before = paths.length;
    const res = await rawHttp(server.port, 'GET http://myapp.expose.test/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
    expect(res.status).toBe(200);
    expect(res.header('x-from')).toBeUndefined();
    expect(paths.length).toBe(before);
  });

  it('never routes by X-Forwarded-Host: the API host stays the API', async () => {
    const before = paths.length;
    const res = await fetch(`${server.base}/health`, { headers: { 'x-forwarded-host': 'myapp.expose.test' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-from')).toBeNull();
    expect(paths.length).toBe(before);
  });

  it('never routes by X-Forwarded-Host: a tunnel host stays the tunnel', async () => {
    const res = await server.visit('myapp.expose.test', '/health', { headers: { 'x-forwarded-host': '127.0.0.1' } });
    expect(res.headers.get('x-from')).toBe('tunnel');
    expect(await res.text()).toBe('tunnel saw /health');
  });

  it('relays API paths on a tunnel host to the tunnel, not the API', async () => {
    const user = await server.newUser();
    for (const path of ['/api/v1/users/me', '/health', '/api/v1/tunnels', '/docs']) {
      const res = await server.visit('myapp.expose.test', path, { headers: { authorization: `Bearer ${user.token}` } });
      expect(res.headers.get('x-from')).toBe('tunnel');
      expect(await res.text()).toBe(`tunnel saw ${path}`);
    }
  });

  it('relays the control-channel path on a tunnel host as a plain request, not a control connection', async () => {
    const before = server.running.relay.sessionCount;
    const res = await server.visit('myapp.expose.test', '/api/v1/tunnel/connect');
    expect(await res.text()).toBe('tunnel saw /api/v1/tunnel/connect');
    expect(server.running.relay.sessionCount).toBe(before);
  });

  it('serves the API, never a tunnel, on the API host and on the bare tunnel domain', async () => {
    const before = paths.length;
    for (const host of [`127.0.0.1:${server.port}`, DOMAIN, 'api.example.com']) {
      const res = await server.visit(host, '/health');
      expect(res.status).toBe(200);
      expect(res.headers.get('x-expose-error')).toBeNull();
      expect(res.headers.get('x-from')).toBeNull();
    }
    const me = await server.visit(DOMAIN, '/api/v1/users/me', { headers: { accept: 'application/json' } });
    expect(me.status).toBe(401);
    expect(((await me.json()) as { error: string }).error).toBe('unauthorized');
    expect(paths.length).toBe(before);
  });

  it('puts none of the API headers on tunnel answers', async () => {
    const api = await fetch(`${server.base}/health`);
    const tunnel = await server.visit('myapp.expose.test', '/x');
    await tunnel.text();
    for (const [name] of api.headers) {
      if (['date', 'content-length', 'content-type'].includes(name)) continue;
      expect(tunnel.headers.get(name)).toBeNull();
    }
  });
});
