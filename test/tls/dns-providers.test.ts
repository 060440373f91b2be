/**
 * The DNS-01 providers against fakes of their APIs (no Pebble here; the Pebble tests obtain real
 * wildcards through each): the requests they send, and errors that name the cause but no credential.
 */
import { describe, expect, it } from 'bun:test';
import { acmeDns, cloudflareDns, DnsProviderError, httpRequestDns } from '../../src/tls/dns-providers.ts';
import { FakeZone } from './helpers.ts';
import { fakeAcmeDns, fakeCloudflare, fakeHttpAdapter } from './fake-dns-apis.ts';

const FQDN = '_acme-challenge.t.expose.test';
const VALUE = 'LHDhK3oGRvkiefQnx7OOczTY5Tic_xZ6HcMOc_gmtoM';

describe('cloudflareDns', () => {
  it('finds the zone by walking up the name, creates a TXT record and deletes that one record', async () => {
    const zone = new FakeZone();
    const server = fakeCloudflare(zone, 'cf-token', 'expose.test');
    try {
      const dns = cloudflareDns({ apiToken: 'cf-token', baseUrl: `http://127.0.0.1:${server.port}/client/v4/` });
      expect(dns.propagationDelayMs).toBe(10_000);
      await dns.present(FQDN, VALUE);
      await dns.present(FQDN, 'other-value');
      expect(server.zoneLookups).toEqual(['t.expose.test', 'expose.test']);
      expect(server.created).toEqual([
        { name: FQDN, content: VALUE, ttl: 120 },
        { name: FQDN, content: 'other-value', ttl: 120 },
      ]);
      await dns.cleanup(FQDN, VALUE);
      expect(zone.get(FQDN)).toEqual(['other-value']);
      // A provider without the ids (a restart between present and cleanup) finds the record by name and content.
      await cloudflareDns({ apiToken: 'cf-token', zoneId: 'zone-0123456789abcdef', baseUrl: `http://127.0.0.1:${server.port}/client/v4` }).cleanup(FQDN, 'other-value');
      expect(zone.get(FQDN)).toEqual([]);
      expect(server.zoneLookups).toHaveLength(2);
    } finally {
      server.stop(true);
    }
  });

  it("fails with Cloudflare's error code and message, never the token", async () => {
    const server = fakeCloudflare(new FakeZone(), 'cf-token', 'expose.test');
    try {
      const wrongToken = cloudflareDns({ apiToken: 'leaked-if-logged', baseUrl: `http://127.0.0.1:${server.port}/client/v4` });
      const error = await wrongToken.present(FQDN, VALUE).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(DnsProviderError);
      expect(String(error)).toContain('HTTP 403 10000 Authentication error');
      expect(String(error)).not.toContain('leaked-if-logged');
      const noZone = cloudflareDns({ apiToken: 'cf-token', baseUrl: `http://127.0.0.1:${server.port}/client/v4` });
      await expect(noZone.present('_acme-challenge.other.example', VALUE)).rejects.toThrow('no zone of this token holds _acme-challenge.other.example');
    } finally {
      server.stop(true);
    }
  });
});

describe('acmeDns', () => {
  it('posts the value to /update with the registration credentials; cleanup sends nothing', async () => {
    const zone = new FakeZone();
    const account = { username: 'user-1', password: 'pass-1', subdomain: 'sub-1' };
    const server = fakeAcmeDns(zone, account, FQDN);
    try {
      const dns = acmeDns({ baseUrl: `http://127.0.0.1:${server.port}/`, ...account });
      expect(dns.propagationDelayMs).toBe(0);
      await dns.present(FQDN, VALUE);
      await dns.cleanup(FQDN, VALUE);
      expect(server.updates).toEqual([VALUE]);
      const error = await acmeDns({ baseUrl: `http://127.0.0.1:${server.port}`, ...account, password: 'wrong-secret' }).present(FQDN, VALUE).catch((e: unknown) => e);
      expect(String(error)).toContain('acme-dns update: HTTP 401');
      expect(String(error)).not.toContain('wrong-secret');
    } finally {
      server.stop(true);
    }
  });
});

describe('httpRequestDns', () => {
  it("posts {fqdn, value} to {url}/present and {url}/cleanup with the fqdn's trailing dot and the bearer token", async () => {
    const zone = new FakeZone();
    const server = fakeHttpAdapter(zone, 'hook-token');
    try {
      const dns = httpRequestDns({ url: `http://127.0.0.1:${server.port}/hook/`, token: 'hook-token' });
      await dns.present(FQDN, VALUE);
      expect(zone.get(FQDN)).toEqual([VALUE]);
      await dns.cleanup(`${FQDN}.`, VALUE);
      expect(server.calls).toEqual([
        { path: '/hook/present', fqdn: `${FQDN}.`, value: VALUE },
        { path: '/hook/cleanup', fqdn: `${FQDN}.`, value: VALUE },
      ]);
      expect(zone.get(FQDN)).toEqual([]);
      await expect(httpRequestDns({ url: `http://127.0.0.1:${server.port}` }).present(FQDN, VALUE)).rejects.toThrow('http dns present: HTTP 401');
    } finally {
      server.stop(true);
    }
  });

  it('names an endpoint that does not answer', async () => {
    const closed = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response() });
    const port = closed.port;
    closed.stop(true);
    await expect(httpRequestDns({ url: `http://127.0.0.1:${port}` }).present(FQDN, VALUE)).rejects.toThrow(/^http dns present: /);
  });
});
