/**
 * Small fakes of the DNS APIs the providers talk to (no network in tests): Cloudflare's v4 DNS API,
 * acme-dns's /update and a generic present/cleanup adapter. Each checks its credentials as the real
 * one does and writes what it is given into a FakeZone (challtestsrv), so Pebble resolves it.
 */
import type { FakeZone } from './helpers.ts';

const json = (body: unknown, status = 200) => Response.json(body, { status });

/** Cloudflare's envelope for a refused request. */
const cloudflareError = (status: number, code: number, message: string) => json({ success: false, errors: [{ code, message }], messages: [], result: null }, status);

/** Cloudflare's API for one zone, at `/client/v4`. */
export function fakeCloudflare(zone: FakeZone, token: string, zoneName: string) {
  const zoneId = 'zone-0123456789abcdef';
  const records = new Map<string, { name: string; content: string }>();
  const created: Array<{ name: string; content: string; ttl: number }> = [];
  const zoneLookups: string[] = [];
  let nextId = 1;
  const server = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    async fetch(request) {
      if (request.headers.get('authorization') !== `Bearer ${token}`) return cloudflareError(403, 10000, 'Authentication error');
      const url = new URL(request.url);
      const path = url.pathname.replace(/^\/client\/v4/, '');
      if (request.method === 'GET' && path === '/zones') {
        const name = url.searchParams.get('name') ?? '';
        zoneLookups.push(name);
        return json({ success: true, errors: [], result: name === zoneName ? [{ id: zoneId, name: zoneName }] : [] });
      }
      const recordsPath = `/zones/${zoneId}/dns_records`;
      if (!path.startsWith(recordsPath)) return cloudflareError(404, 7003, 'Could not route');
      if (request.method === 'POST' && path === recordsPath) {
        const body = (await request.json()) as { type: string; name: string; content: string; ttl: number };
        if (body.type !== 'TXT') return cloudflareError(400, 9000, 'type');
        const id = `rec${nextId++}`;
        records.set(id, { name: body.name, content: body.content });
        created.push({ name: body.name, content: body.content, ttl: body.ttl });
        await zone.add(body.name, body.content);
        return json({ success: true, errors: [], result: { id, type: 'TXT', name: body.name, content: body.content } });
      }
      if (request.method === 'GET' && path === recordsPath) {
        const name = url.searchParams.get('name');
        // Cloudflare hands TXT content back in quotes.
        const result = [...records].filter(([, r]) => r.name === name).map(([id, r]) => ({ id, type: 'TXT', name: r.name, content: `"${r.content}"` }));
        return json({ success: true, errors: [], result });
      }
      const id = path.slice(recordsPath.length + 1);
      const record = records.get(id);
      if (request.method === 'DELETE' && record !== undefined) {
        records.delete(id);
        await zone.remove(record.name, record.content);
        return json({ success: true, errors: [], result: { id } });
      }
      return cloudflareError(404, 81044, 'Record does not exist.');
    },
  });
  return Object.assign(server, { records, created, zoneLookups });
}

/** acme-dns's `/update` for one registration; writes to `challengeName`, standing in for the CNAME to it. */
export function fakeAcmeDns(zone: FakeZone, account: { username: string; password: string; subdomain: string }, challengeName: string) {
  const updates: string[] = [];
  const server = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    async fetch(request) {
      if (request.method !== 'POST' || new URL(request.url).pathname !== '/update') return new Response('not found', { status: 404 });
      if (request.headers.get('x-api-user') !== account.username || request.headers.get('x-api-key') !== account.password) {
        return json({ error: 'forbidden' }, 401);
      }
      const body = (await request.json()) as { subdomain?: string; txt?: string };
      if (body.subdomain !== account.subdomain) return json({ error: 'forbidden' }, 401);
      // acme-dns accepts exactly the 43 characters of a base64url SHA-256 digest.
      if (typeof body.txt !== 'string' || !/^[A-Za-z0-9_-]{43}$/.test(body.txt)) return json({ error: 'bad_txt' }, 400);
      updates.push(body.txt);
      await zone.add(challengeName, body.txt);
      await zone.keepNewest(challengeName, 2);
      return json({ txt: body.txt });
    },
  });
  return Object.assign(server, { updates });
}

/** A present/cleanup endpoint pair under any prefix, behind a bearer token. */
export function fakeHttpAdapter(zone: FakeZone, token: string) {
  const calls: Array<{ path: string; fqdn: string; value: string }> = [];
  const server = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    async fetch(request) {
      if (request.headers.get('authorization') !== `Bearer ${token}`) return new Response('unauthorized', { status: 401 });
      const path = new URL(request.url).pathname;
      const body = (await request.json()) as { fqdn: string; value: string };
      calls.push({ path, ...body });
      if (path.endsWith('/present')) await zone.add(body.fqdn, body.value);
      else if (path.endsWith('/cleanup')) await zone.remove(body.fqdn, body.value);
      else return new Response('not found', { status: 404 });
      return new Response(null, { status: 204 });
    },
  });
  return Object.assign(server, { calls });
}
