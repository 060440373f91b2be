/**
 * The certificate manager's rules with a fake CA and an injected clock: one order per name however
 * many ask, backoff after a failure, what is loaded from the store and what is ordered anew, and
 * what is logged (never a key or a certificate).
 */
import { describe, expect, it } from 'bun:test';
import { ManualClock } from '../../src/lib/clock.ts';
import { createMemoryLogger } from '../../src/lib/logger.ts';
import type { CertificateMaterial } from '../../src/tls/certificate.ts';
import { CertificateManager, type CertificateManagerOptions } from '../../src/tls/manager.ts';
import { DEFAULT_RETRY, renewalDueMs, retryDelayMs } from '../../src/tls/renewal.ts';
import { CertificateStore } from '../../src/tls/store.ts';
import { FAST_RETRY, FakeIssuer, openTestDb, selfSigned } from './helpers.ts';
import { until } from './tls-server.ts';

const API_HOST = 'api.expose.test';

function setup(overrides: Partial<CertificateManagerOptions> = {}) {
  const db = openTestDb();
  const store = new CertificateStore(db.db);
  const issuer = new FakeIssuer();
  const clock = new ManualClock(Date.now());
  const logger = createMemoryLogger();
  const installed: Array<{ name: string; certificate: CertificateMaterial }> = [];
  const removed: string[] = [];
  const manager = new CertificateManager({
    issuer,
    store,
    logger,
    clock,
    retry: FAST_RETRY,
    onCertificate: (name, certificate) => installed.push({ name, certificate }),
    onRemoved: (name) => removed.push(name),
    ...overrides,
  });
  return { db, store, issuer, clock, logger, manager, installed, removed };
}

describe('renewal arithmetic', () => {
  it('renews at two thirds of the life: day 60 of a 90-day certificate', () => {
    const day = 86_400_000;
    expect(renewalDueMs(0, 90 * day)).toBe(60 * day);
    expect(renewalDueMs(1_000, 4_000)).toBe(3_000);
  });

  it('doubles the retry delay from the base at each failure, up to the cap', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 8, 50].map((n) => retryDelayMs(n, DEFAULT_RETRY) / 60_000)).toEqual([1, 2, 4, 8, 16, 32, 60, 60, 60]);
    expect(retryDelayMs(1_000, { baseMs: 1, maxMs: 5 })).toBe(5);
  });
});

describe('CertificateManager', () => {
  it('orders once for concurrent callers of one name, stores it and installs it', async () => {
    const t = setup();
    t.manager.manage({ name: API_HOST, challenge: 'http-01' });
    t.issuer.hold = true;
    const calls = [t.manager.obtain(API_HOST), t.manager.obtain(API_HOST), t.manager.renewDue().then(() => t.manager.certificate(API_HOST)!)];
    await until(() => t.issuer.orders.length > 0, 'the held order');
    t.issuer.release();
    const [a, b, c] = await Promise.all(calls);
    expect(t.issuer.orders).toEqual([{ names: [API_HOST], challenge: 'http-01' }]);
    expect(a).toBe(b!);
    expect(a).toBe(c!);
    expect(t.installed.map((e) => e.name)).toEqual([API_HOST]);
    expect(t.store.get(API_HOST)?.material.certPem).toBe(a!.certPem);
  });

  it('after a failure, fails at once during the backoff and orders again after it', async () => {
    const t = setup();
    t.manager.manage({ name: API_HOST, challenge: 'http-01' });
    t.issuer.failWith = new Error('rateLimited: too many certificates');
    await expect(t.manager.obtain(API_HOST)).rejects.toThrow('rateLimited');
    await expect(t.manager.obtain(API_HOST)).rejects.toThrow('rateLimited');
    expect(t.issuer.orders).toHaveLength(1);

    t.clock.advance(FAST_RETRY.baseMs);
    await expect(t.manager.obtain(API_HOST)).rejects.toThrow('rateLimited');
    expect(t.issuer.orders).toHaveLength(2);
    // The second failure in a row waits twice as long.
    t.clock.advance(FAST_RETRY.baseMs);
    await t.manager.renewDue();
    expect(t.issuer.orders).toHaveLength(2);
    t.issuer.failWith = undefined;
    t.clock.advance(FAST_RETRY.baseMs);
    await t.manager.renewDue();
    expect(t.issuer.orders).toHaveLength(3);
    expect(t.manager.certificate(API_HOST)).toBeDefined();

    const failures = t.logger.lines.map((l) => JSON.parse(l)).filter((l) => l.level === 'error');
    expect(failures.map((l) => [l.msg, l.failures, l.error])).toEqual([
      ['tls certificate could not be obtained; retrying', 1, 'rateLimited: too many certificates'],
      ['tls certificate could not be obtained; retrying', 2, 'rateLimited: too many certificates'],
    ]);
  });

  it('serves an unexpired stored certificate from the same CA without an order, and renews it when due', async () => {
    const t = setup();
    const stored = await selfSigned([API_HOST]);
    t.store.put(API_HOST, t.issuer.directoryUrl, stored, false, t.clock.now());
    t.manager.manage({ name: API_HOST, challenge: 'http-01' });
    expect(t.installed.map((e) => e.certificate.certPem)).toEqual([stored.certPem]);
    await t.manager.renewDue();
    expect(t.issuer.orders).toHaveLength(0);
    t.clock.advance(renewalDueMs(stored.notBeforeMs, stored.notAfterMs) - t.clock.now());
    await t.manager.renewDue();
    expect(t.issuer.orders).toHaveLength(1);
    expect(t.installed).toHaveLength(2);
    expect(t.logger.lines.some((l) => l.includes('"tls certificate renewed"'))).toBe(true);
  });

  it('orders anew, serving nothing meanwhile, when the stored certificate expired, names other hosts, or is unreadable', async () => {
    for (const [label, prepare] of [
      ['expired', async (t: ReturnType<typeof setup>) => {
        const old = await selfSigned([API_HOST], 1);
        t.store.put(API_HOST, t.issuer.directoryUrl, old, false, t.clock.now());
        t.clock.advance(2 * 86_400_000);
      }],
      ['other names', async (t: ReturnType<typeof setup>) => t.store.put(API_HOST, t.issuer.directoryUrl, await selfSigned(['old.expose.test']), false, t.clock.now())],
      ['unreadable', async (t: ReturnType<typeof setup>) => {
        t.store.put(API_HOST, t.issuer.directoryUrl, await selfSigned([API_HOST]), false, t.clock.now());
        t.db.sqlite.run("UPDATE tls_certificates SET cert_pem = 'garbage'");
      }],
    ] as const) {
      const t = setup();
      await prepare(t);
      t.manager.manage({ name: API_HOST, challenge: 'http-01' });
      expect({ label, installed: t.installed.length }).toEqual({ label, installed: 0 });
      await t.manager.renewDue();
      expect({ label, orders: t.issuer.orders.length }).toEqual({ label, orders: 1 });
      expect(t.manager.certificate(API_HOST)?.names).toEqual([API_HOST]);
    }
  });

  it('logs a failed renewal at error level with the date the old certificate serves until', async () => {
    const t = setup();
    t.manager.manage({ name: API_HOST, challenge: 'http-01' });
    const first = await t.manager.obtain(API_HOST);
    t.issuer.failWith = new Error('connect ECONNREFUSED');
    t.clock.advance(renewalDueMs(first.notBeforeMs, first.notAfterMs) - t.clock.now());
    await t.manager.renewDue();
    const line = JSON.parse(t.logger.lines.at(-1)!);
    expect(line).toMatchObject({ level: 'error', name: API_HOST, failures: 1, error: 'connect ECONNREFUSED', retry_in_s: 0 });
    expect(line.msg).toStartWith('TLS CERTIFICATE RENEWAL FAILED');
    expect(line.not_after).toBe(new Date(first.notAfterMs).toISOString().replace(/\.\d{3}Z$/, 'Z'));
    expect(t.manager.certificate(API_HOST)).toBe(first);
    expect(await t.manager.obtain(API_HOST)).toBe(first);

    t.clock.advance(first.notAfterMs - t.clock.now() + 1);
    await t.manager.renewDue();
    expect(JSON.parse(t.logger.lines.at(-1)!).msg).toStartWith('TLS CERTIFICATE EXPIRED');
  });

  it('never logs a private key or a certificate', async () => {
    const t = setup();
    t.manager.manage({ name: API_HOST, challenge: 'http-01' });
    const material = await t.manager.obtain(API_HOST);
    t.issuer.failWith = new Error('boom');
    t.clock.advance(material.notAfterMs - t.clock.now() - 1);
    await t.manager.renewDue();
    const second = setup();
    second.store.put(API_HOST, second.issuer.directoryUrl, material, false, second.clock.now());
    second.manager.manage({ name: API_HOST, challenge: 'http-01' });
    const all = [...t.logger.lines, ...second.logger.lines].join('');
    expect(all).toContain('tls certificate loaded from the database');
    expect(all).not.toContain('BEGIN');
    const keyBody = material.keyPem.split('\n')[1]!;
    const certBody = material.certPem.split('\n')[1]!;
    expect(all).not.toContain(keyBody);
    expect(all).not.toContain(certBody);
  });

  it('keeps going when installing a certificate throws, and says so', async () => {
    const t = setup({
      onCertificate: () => {
        throw new Error('listen EADDRINUSE');
      },
    });
    t.manager.manage({ name: API_HOST, challenge: 'http-01' });
    await t.manager.renewDue();
    expect(t.manager.certificate(API_HOST)).toBeDefined();
    expect(t.logger.lines.some((l) => l.includes('tls certificate could not be installed') && l.includes('EADDRINUSE'))).toBe(true);
  });

  it('drops instead of renewing a certificate that is no longer wanted', async () => {
    const t = setup();
    let wanted = true;
    t.manager.manage({ name: 'x.expose.test', challenge: 'http-01', onDemand: true, keepRenewing: () => wanted });
    const first = await t.manager.obtain('x.expose.test');
    expect(t.store.get('x.expose.test')?.onDemand).toBe(true);
    wanted = false;
    t.clock.advance(renewalDueMs(first.notBeforeMs, first.notAfterMs) - t.clock.now());
    await t.manager.renewDue();
    expect(t.issuer.orders).toHaveLength(1);
    expect(t.manager.has('x.expose.test')).toBe(false);
    expect(t.store.get('x.expose.test')).toBeUndefined();
    expect(t.removed).toEqual(['x.expose.test']);
  });

  it('finds the certificate that covers a host: exact names, and a wildcard for one label only', async () => {
    const t = setup();
    t.manager.manage({ name: '*.expose.test', challenge: 'dns-01' });
    t.manager.manage({ name: API_HOST, challenge: 'http-01' });
    await t.manager.renewDue();
    expect(t.manager.find('foo.expose.test')?.names).toEqual(['*.expose.test']);
    expect(t.manager.find('API.expose.test.')?.names).toEqual([API_HOST]);
    expect(t.manager.find('a.b.expose.test')).toBeUndefined();
    expect(t.manager.find('expose.test')).toBeUndefined();
    expect([...t.manager.certificates().keys()]).toEqual(['*.expose.test', API_HOST]);
  });
});
