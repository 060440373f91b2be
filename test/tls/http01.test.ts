/**
 * HTTP-01 against a real Pebble: the API host's certificate is ordered, verifies with Pebble's root
 * for its name only, is kept in the database with the account key, and a restart serves it again
 * without a new order.
 */
import { afterAll, afterEach, beforeAll, expect, it } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeWithPebble, type Pebble } from '../helpers/pebble.ts';
import { fetchOverTls, openTestDb, testManager, usePebble } from './helpers.ts';

const API_HOST = 'api.expose.test';
/** Generous: Pebble answers in ~200 ms, but CI machines are shared. */
const TEST_TIMEOUT_MS = 60_000;
const describePebble = await describeWithPebble('the HTTP-01 tests');

describePebble('HTTP-01 against Pebble', () => {
  const fixture = usePebble(TEST_TIMEOUT_MS);
  const { challenges } = fixture;
  let pebble: Pebble;
  const dirs: string[] = [];
  beforeAll(() => {
    pebble = fixture.pebble;
  });
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it('obtains the API host certificate, which verifies with the issuing root for that name only', async () => {
    const db = openTestDb();
    const t = await testManager({ pebble, challenges, db });
    const issued = t.nextCertificate(API_HOST);
    t.manager.manage({ name: API_HOST, challenge: 'http-01' });
    await t.manager.start();
    t.manager.stop();
    const { certificate } = await issued;
    expect(certificate.names).toEqual([API_HOST]);
    expect(certificate.notAfterMs).toBeGreaterThan(Date.now());
    expect(t.issuer.orders).toEqual([{ names: [API_HOST], challenge: 'http-01' }]);
    expect(challenges.size).toBe(0);

    const all = t.manager.certificates();
    expect(await fetchOverTls(all, API_HOST, API_HOST, pebble.issuingRootPem())).toBe(`hello ${API_HOST}`);
    await expect(fetchOverTls(all, API_HOST, 'other.expose.test', pebble.issuingRootPem())).rejects.toThrow();
    // Nothing but Pebble's root vouches for it.
    await expect(fetchOverTls(all, API_HOST, API_HOST, pebble.listenerCaPem)).rejects.toThrow();

    const logged = await t.logged('tls certificate obtained');
    expect(logged).toMatchObject({ level: 'info', name: API_HOST, challenge: 'http-01' });
    expect(t.logger.lines.join('')).not.toContain('BEGIN');
  }, TEST_TIMEOUT_MS);

  it('keeps the certificate, its key and the account key in the database: a restart serves them with no new order', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'expose-tls-'));
    dirs.push(dir);
    const path = join(dir, 'expose.db');

    const firstDb = openTestDb(path);
    const first = await testManager({ pebble, challenges, db: firstDb });
    first.manager.manage({ name: API_HOST, challenge: 'http-01' });
    await first.manager.start();
    first.manager.stop();
    const obtained = first.manager.certificate(API_HOST)!;
    const accountKey = await first.store.accountKey();
    firstDb.sqlite.close();

    const secondDb = openTestDb(path);
    const second = await testManager({ pebble, challenges, db: secondDb });
    expect(await second.store.accountKey()).toBe(accountKey);
    const loaded = second.nextCertificate(API_HOST);
    second.manager.manage({ name: API_HOST, challenge: 'http-01' });
    await second.manager.start();
    second.manager.stop();
    expect((await loaded).certificate.certPem).toBe(obtained.certPem);
    expect(second.manager.certificate(API_HOST)!.keyPem).toBe(obtained.keyPem);
    expect(second.issuer.orders).toEqual([]);
    expect(await second.logged('tls certificate loaded from the database')).toMatchObject({ name: API_HOST });
    expect(await fetchOverTls(second.manager.certificates(), API_HOST, API_HOST, pebble.issuingRootPem())).toBe(`hello ${API_HOST}`);
    secondDb.sqlite.close();
  }, TEST_TIMEOUT_MS);

  it('orders anew when the stored certificate came from another CA (staging to production)', async () => {
    const db = openTestDb();
    const first = await testManager({ pebble, challenges, db });
    first.manager.manage({ name: API_HOST, challenge: 'http-01' });
    await first.manager.start();
    first.manager.stop();
    const stored = first.store.get(API_HOST)!;
    first.store.put(API_HOST, 'https://acme-staging-v02.api.letsencrypt.org/directory', stored.material, false, Date.now());

    const second = await testManager({ pebble, challenges, db });
    second.manager.manage({ name: API_HOST, challenge: 'http-01' });
    await second.manager.start();
    second.manager.stop();
    expect(second.issuer.orders).toHaveLength(1);
    expect(second.store.get(API_HOST)!.directoryUrl).toBe(pebble.directoryUrl);
  }, TEST_TIMEOUT_MS);
});
