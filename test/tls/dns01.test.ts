/**
 * DNS-01 wildcards against a real Pebble, through each provider: the generic HTTP request (to a tiny
 * adapter in front of challtestsrv), Cloudflare's API and acme-dns (small fakes of their APIs that
 * write the records into challtestsrv, so Pebble really resolves them).
 */
import { afterAll, beforeAll, expect, it } from 'bun:test';
import { acmeDns, cloudflareDns, httpRequestDns, type DnsProvider } from '../../src/tls/dns-providers.ts';
import { describeWithPebble, type Pebble } from '../helpers/pebble.ts';
import { FakeZone, fetchOverTls, openTestDb, testManager, usePebble } from './helpers.ts';
import { fakeAcmeDns, fakeCloudflare, fakeHttpAdapter } from './fake-dns-apis.ts';

const WILDCARD = '*.expose.test';
const CHALLENGE_NAME = '_acme-challenge.expose.test';
/** Generous: Pebble answers in ~200 ms, but CI machines are shared. */
const TEST_TIMEOUT_MS = 60_000;
const describePebble = await describeWithPebble('the DNS-01 tests');

describePebble('DNS-01 wildcards against Pebble', () => {
  const fixture = usePebble(TEST_TIMEOUT_MS);
  const { challenges } = fixture;
  let pebble: Pebble;
  let zone: FakeZone;
  beforeAll(() => {
    pebble = fixture.pebble;
    zone = new FakeZone(pebble);
  });

  /** Orders `names` through `dns` and checks what the certificate serves. */
  async function obtainWildcard(dns: DnsProvider, names: string[] = [WILDCARD]) {
    const t = await testManager({ pebble, challenges, db: openTestDb(), dns });
    t.manager.manage({ name: WILDCARD, names, challenge: 'dns-01' });
    await t.manager.start();
    t.manager.stop();
    const certificate = t.manager.certificate(WILDCARD);
    if (certificate === undefined) throw new Error(`no certificate: ${t.logger.lines.join('')}`);
    expect(certificate.names).toEqual(names);
    expect(t.issuer.orders).toEqual([{ names, challenge: 'dns-01' }]);
    const all = t.manager.certificates();
    const root = pebble.issuingRootPem();
    for (const host of ['foo.expose.test', 'a-tunnel.expose.test']) expect(await fetchOverTls(all, WILDCARD, host, root)).toBe(`hello ${host}`);
    // One label only: a wildcard never covers a deeper name.
    await expect(fetchOverTls(all, WILDCARD, 'a.b.expose.test', root)).rejects.toThrow();
    expect(t.logger.lines.join('')).not.toContain('BEGIN');
    return t;
  }

  it('through the generic HTTP request provider, with its bearer token, and cleans up', async () => {
    const adapter = fakeHttpAdapter(zone, 'adapter-token');
    try {
      await obtainWildcard(httpRequestDns({ url: `http://127.0.0.1:${adapter.port}/acme`, token: 'adapter-token' }));
      expect(adapter.calls.map((c) => [c.path, c.fqdn])).toEqual([
        ['/acme/present', `${CHALLENGE_NAME}.`],
        ['/acme/cleanup', `${CHALLENGE_NAME}.`],
      ]);
      expect(zone.get(CHALLENGE_NAME)).toEqual([]);
    } finally {
      adapter.stop(true);
    }
  }, TEST_TIMEOUT_MS);

  it("through Cloudflare's API: zone by name, one TXT record per value (wildcard and apex at once), deleted after", async () => {
    const cloudflare = fakeCloudflare(zone, 'cf-token', 'expose.test');
    try {
      await obtainWildcard(cloudflareDns({ apiToken: 'cf-token', baseUrl: `http://127.0.0.1:${cloudflare.port}/client/v4`, propagationDelayMs: 0 }), [WILDCARD, 'expose.test']);
      expect(cloudflare.created).toHaveLength(2);
      expect(new Set(cloudflare.created.map((r) => r.name))).toEqual(new Set([CHALLENGE_NAME]));
      expect(cloudflare.records.size).toBe(0);
      expect(zone.get(CHALLENGE_NAME)).toEqual([]);
    } finally {
      cloudflare.stop(true);
    }
  }, TEST_TIMEOUT_MS);

  it('through acme-dns: /update with X-Api-User and X-Api-Key (its records stay, as acme-dns keeps the newest two)', async () => {
    const server = fakeAcmeDns(zone, { username: 'acme-user', password: 'acme-pass', subdomain: 'd420c923-bbd7-4056-ab64-c3ca54c9b3cf' }, CHALLENGE_NAME);
    try {
      await obtainWildcard(acmeDns({ baseUrl: `http://127.0.0.1:${server.port}`, username: 'acme-user', password: 'acme-pass', subdomain: 'd420c923-bbd7-4056-ab64-c3ca54c9b3cf' }));
      expect(server.updates).toHaveLength(1);
      expect(zone.get(CHALLENGE_NAME)).toEqual(server.updates);
    } finally {
      await zone.remove(CHALLENGE_NAME);
      server.stop(true);
    }
  }, TEST_TIMEOUT_MS);

  it('logs a failed DNS provider as a failed order, without its credentials', async () => {
    const adapter = fakeHttpAdapter(zone, 'right-token');
    try {
      const t = await testManager({ pebble, challenges, db: openTestDb(), dns: httpRequestDns({ url: `http://127.0.0.1:${adapter.port}`, token: 'wrong-secret-token' }) });
      t.manager.manage({ name: WILDCARD, challenge: 'dns-01' });
      await t.manager.start();
      t.manager.stop();
      expect(t.manager.certificate(WILDCARD)).toBeUndefined();
      const line = await t.logged('tls certificate could not be obtained');
      expect(line).toMatchObject({ level: 'error', name: WILDCARD, challenge: 'dns-01', failures: 1 });
      expect(String(line.error)).toContain('HTTP 401');
      expect(t.logger.lines.join('')).not.toContain('wrong-secret-token');
    } finally {
      adapter.stop(true);
    }
  }, TEST_TIMEOUT_MS);
});
