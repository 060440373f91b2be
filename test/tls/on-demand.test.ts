/**
 * On-demand certificates for tunnel hosts (no DNS provider): one order per host however many ask,
 * only for hosts the caller allows, at most `maxCertificates` held, taken back after a restart, and
 * a real one from Pebble by HTTP-01.
 */
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { ManualClock } from '../../src/lib/clock.ts';
import { createMemoryLogger } from '../../src/lib/logger.ts';
import { CertificateManager } from '../../src/tls/manager.ts';
import { OnDemandCertificates, OnDemandRefusedError } from '../../src/tls/on-demand.ts';
import { CertificateStore } from '../../src/tls/store.ts';
import type { DbHandle } from '../../src/db/client.ts';
import { describeWithPebble, type Pebble } from '../helpers/pebble.ts';
import { FAST_RETRY, FakeIssuer, fetchOverTls, openTestDb, testManager, usePebble } from './helpers.ts';
import { until } from './tls-server.ts';

/** Generous: Pebble answers in ~200 ms, but CI machines are shared. */
const TEST_TIMEOUT_MS = 60_000;
const DOMAIN = 'expose.test';
const live = new Set(['a.expose.test', 'b.expose.test', 'c.expose.test']);
const allow = (host: string) => live.has(host);

function setup(maxCertificates = 2, db: DbHandle = openTestDb()) {
  const store = new CertificateStore(db.db);
  const issuer = new FakeIssuer();
  const clock = new ManualClock(Date.now());
  const logger = createMemoryLogger();
  const removed: string[] = [];
  const manager = new CertificateManager({ issuer, store, logger, clock, retry: FAST_RETRY, onRemoved: (name) => removed.push(name) });
  const onDemand = new OnDemandCertificates({ manager, store, logger, maxCertificates, allow, clock });
  return { db, store, issuer, clock, logger, manager, onDemand, removed };
}

describe('OnDemandCertificates', () => {
  it('orders once for concurrent requests for one host (HTTP-01, stored as on-demand)', async () => {
    const t = setup();
    t.issuer.hold = true;
    const calls = [t.onDemand.ensureCertificate('a.expose.test'), t.onDemand.ensureCertificate('A.Expose.Test.'), t.onDemand.ensureCertificate('a.expose.test')];
    await until(() => t.issuer.orders.length > 0, 'the held order');
    t.issuer.release();
    const [first, ...rest] = await Promise.all(calls);
    for (const other of rest) expect(other).toBe(first!);
    expect(t.issuer.orders).toEqual([{ names: ['a.expose.test'], challenge: 'http-01' }]);
    expect(t.store.get('a.expose.test')?.onDemand).toBe(true);
    expect(await t.onDemand.ensureCertificate('a.expose.test')).toBe(first!);
    expect(t.issuer.orders).toHaveLength(1);
  });

  it('refuses a host the caller does not allow, without an order', async () => {
    const t = setup();
    await expect(t.onDemand.ensureCertificate('nobody.expose.test')).rejects.toBeInstanceOf(OnDemandRefusedError);
    expect(t.issuer.orders).toHaveLength(0);
  });

  it('answers from a managed certificate that covers the host (the wildcard) without an order', async () => {
    const t = setup();
    t.manager.manage({ name: `*.${DOMAIN}`, challenge: 'dns-01' });
    await t.manager.renewDue();
    expect((await t.onDemand.ensureCertificate('nobody.expose.test')).names).toEqual([`*.${DOMAIN}`]);
    expect(t.issuer.orders).toHaveLength(1);
  });

  it('holds at most maxCertificates: a new host evicts the least recently asked-for one, from the store too', async () => {
    const t = setup(2);
    await t.onDemand.ensureCertificate('a.expose.test');
    await t.onDemand.ensureCertificate('b.expose.test');
    await t.onDemand.ensureCertificate('a.expose.test');
    await t.onDemand.ensureCertificate('c.expose.test');
    expect(t.onDemand.hosts()).toEqual(['a.expose.test', 'c.expose.test']);
    expect(t.removed).toEqual(['b.expose.test']);
    expect(t.store.get('b.expose.test')).toBeUndefined();
    expect(t.manager.has('b.expose.test')).toBe(false);
    expect(t.logger.lines.some((l) => l.includes('tls on-demand certificate evicted') && l.includes('b.expose.test'))).toBe(true);
    expect(t.issuer.orders).toHaveLength(3);
  });

  it('does not order again for a host whose order just failed (backoff), then does', async () => {
    const t = setup();
    t.issuer.failWith = new Error('urn:ietf:params:acme:error:rateLimited');
    await expect(t.onDemand.ensureCertificate('a.expose.test')).rejects.toThrow('rateLimited');
    await expect(t.onDemand.ensureCertificate('a.expose.test')).rejects.toThrow('rateLimited');
    expect(t.issuer.orders).toHaveLength(1);
    t.issuer.failWith = undefined;
    t.clock.advance(FAST_RETRY.baseMs);
    expect((await t.onDemand.ensureCertificate('a.expose.test')).names).toEqual(['a.expose.test']);
    expect(t.issuer.orders).toHaveLength(2);
  });

  it("takes back the stored ones after a restart, newest up to the cap, and warns about the CA's rate limits", async () => {
    const db = openTestDb();
    const before = setup(3, db);
    for (const host of ['a.expose.test', 'b.expose.test', 'c.expose.test']) {
      await before.onDemand.ensureCertificate(host);
      before.clock.advance(1_000);
    }
    const after = setup(2, db);
    after.onDemand.load(after.issuer.directoryUrl);
    expect(after.onDemand.hosts()).toEqual(['b.expose.test', 'c.expose.test']);
    expect(after.manager.certificate('c.expose.test')?.certPem).toBe(before.manager.certificate('c.expose.test')!.certPem);
    const warning = after.logger.lines.map((l) => JSON.parse(l)).find((l) => l.msg.startsWith('tls on-demand certificates are on'));
    expect(warning).toMatchObject({ level: 'warn', max_certificates: 2, loaded: 2 });
    expect(warning.hint).toContain('50 certificates per registered domain per week');
    await after.manager.renewDue();
    expect(after.issuer.orders).toHaveLength(0);
  });
});

const describePebble = await describeWithPebble('the on-demand Pebble test');

describePebble('on-demand against Pebble', () => {
  const fixture = usePebble(TEST_TIMEOUT_MS);
  const { challenges } = fixture;
  let pebble: Pebble;
  beforeAll(() => {
    pebble = fixture.pebble;
  });

  it('obtains a tunnel host certificate by HTTP-01 that serves that host', async () => {
    const db = openTestDb();
    const t = await testManager({ pebble, challenges, db });
    const onDemand = new OnDemandCertificates({ manager: t.manager, store: t.store, logger: t.logger, maxCertificates: 10, allow });
    const [certificate, again] = await Promise.all([onDemand.ensureCertificate('b.expose.test'), onDemand.ensureCertificate('b.expose.test')]);
    expect(again).toBe(certificate);
    expect(t.issuer.orders).toEqual([{ names: ['b.expose.test'], challenge: 'http-01' }]);
    expect(await fetchOverTls(t.manager.certificates(), 'b.expose.test', 'b.expose.test', pebble.issuingRootPem())).toBe('hello b.expose.test');
  }, TEST_TIMEOUT_MS);
});
