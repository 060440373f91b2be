/**
 * What keeps the API's reads cheap, tested as behaviour: guarded GET routes answer without a promise
 * (no hook waits on anything), while every route whose method may carry a body still reads it up to
 * the limit, so making reads synchronous took no body check away.
 */
import { describe, expect, it } from 'bun:test';
import { makeTestApp } from '../helpers/app.ts';

const UUID = '0190c4a2-7b1e-7c3d-9f00-0123456789ab';

/** A body with no Content-Length, streamed in pieces: only reading it can find its size. */
function streamedBody(bytes: number): ReadableStream<Uint8Array> {
  let sent = 0;
  return new ReadableStream({
    pull(controller) {
      if (sent >= bytes) return controller.close();
      const piece = new Uint8Array(Math.min(16 * 1024, bytes - sent)).fill(0x7b);
      sent += piece.length;
      controller.enqueue(piece);
    },
  });
}

describe('the hot path', () => {
  it('answers guarded GET routes synchronously, with an API key, a session token and a 429 alike', async () => {
    const t = makeTestApp({ EXPOSE_RATE_LIMIT_API: '6' });
    const { token, key } = await t.registerWithKey();
    const get = (path: string, credential: string) => t.app.fetch(new Request(`http://localhost${path}`, { headers: { authorization: `Bearer ${credential}`, 'x-test-peer': '192.0.2.7' } }));
    // (A thrown error, such as the 404 of an unknown tunnel, goes through Elysia's error handler, which
    // is asynchronous; refusals are returned, not thrown, for this reason among others.)
    for (const path of ['/api/v1/users/me', '/api/v1/api-keys', '/api/v1/tunnels']) {
      const answer = get(path, key);
      expect({ path, synchronous: answer instanceof Response }).toEqual({ path, synchronous: true });
      expect((answer as Response).status).toBe(200);
      expect((answer as Response).headers.get('x-request-id')).not.toBeNull();
    }
    // The account's bucket holds six: creating the key and the three reads took four, two more pass.
    let last: Response | Promise<Response> = get('/api/v1/users/me', token);
    for (let i = 0; i < 3; i++) last = get('/api/v1/users/me', token);
    expect(last).toBeInstanceOf(Response);
    expect((last as Response).status).toBe(429);
    const unknown = get('/api/v1/users/me', 'exp_k1_0000000000000000000000000000000000000000000000');
    expect(unknown).toBeInstanceOf(Response);
    expect((unknown as Response).status).toBe(401);
  });

  it('answers the same reads synchronously through Elysia too (HEAD, or the direct reads bypassed)', async () => {
    const t = makeTestApp({ EXPOSE_RATE_LIMIT_API: '0' });
    const { token, key } = await t.registerWithKey();
    // Elysia's own fetch, as a request the direct reads leave to it (a HEAD, a GET announcing a body) reaches it.
    for (const path of ['/api/v1/users/me', '/api/v1/api-keys', '/api/v1/tunnels']) {
      for (const credential of [key, token]) {
        const answer = t.app.elysia.fetch(new Request(`http://localhost${path}`, { headers: { authorization: `Bearer ${credential}`, 'x-test-peer': '192.0.2.7' } }));
        expect({ path, synchronous: answer instanceof Response }).toEqual({ path, synchronous: true });
        expect((answer as Response).status).toBe(200);
      }
    }
  });

  it('refuses a streamed body over 64 KiB with 413 on every route whose method may carry one', async () => {
    const t = makeTestApp({ EXPOSE_RATE_LIMIT_API: '0', EXPOSE_RATE_LIMIT_AUTH: '0' });
    const { token } = await t.registerWithKey();
    const routes = t.app.elysia.routes.filter((route) => route.method !== 'GET' && route.method !== 'HEAD');
    expect(routes.length).toBeGreaterThanOrEqual(7);
    for (const route of routes) {
      const method = route.method === 'ALL' ? 'POST' : route.method;
      const path = route.path.replace(':id', UUID).replace('*', 'no-such-route');
      const res = await t.app.fetch(
        new Request(`http://localhost${path}`, {
          method,
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: streamedBody(70 * 1024),
          duplex: 'half',
        } as RequestInit),
      );
      expect({ route: `${route.method} ${route.path}`, status: res.status }).toEqual({ route: `${route.method} ${route.path}`, status: 413 });
      expect(((await res.json()) as { error: string }).error).toBe('payload_too_large');
    }
  });
});
