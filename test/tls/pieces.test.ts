/**
 * The small parts of src/tls: the HTTP-01 answers the plain-HTTP listener gives, the SNI list for
 * Bun.serve, name matching, and what the store keeps (table from drizzle/0002, account key reused).
 */
import { describe, expect, it } from 'bun:test';
import { covers, nameMatches } from '../../src/tls/certificate.ts';
import { ACME_CHALLENGE_PATH, Http01Challenges } from '../../src/tls/http-challenges.ts';
import { tlsEntries } from '../../src/tls/sni.ts';
import { CertificateStore } from '../../src/tls/store.ts';
import { openTestDb, selfSigned } from './helpers.ts';

describe('Http01Challenges.respond', () => {
  const challenges = new Http01Challenges();
  challenges.present('tok_EN-1', 'tok_EN-1.thumbprint');

  it('answers a known token with its key authorization as text/plain, uncached', async () => {
    const response = challenges.respond(`http://api.expose.test${ACME_CHALLENGE_PATH}tok_EN-1`)!;
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    expect(response.headers.get('cache-control')).toBe('no-store');
    expect(await response.text()).toBe('tok_EN-1.thumbprint');
    expect(challenges.challengeResponse('tok_EN-1')).toBe('tok_EN-1.thumbprint');
  });

  it('answers 404 to an unknown or malformed token, and leaves every other path to the listener', () => {
    expect(challenges.respond(`http://x${ACME_CHALLENGE_PATH}other`)!.status).toBe(404);
    expect(challenges.respond(`http://x${ACME_CHALLENGE_PATH}tok_EN-1/../x`)!.status).toBe(404);
    expect(challenges.respond(`http://x${ACME_CHALLENGE_PATH}`)!.status).toBe(404);
    expect(challenges.respond('http://x/')).toBeUndefined();
    expect(challenges.respond('http://x/.well-known/other')).toBeUndefined();
  });

  it('stops answering once the token is removed', () => {
    const own = new Http01Challenges();
    own.present('t1', 'k1');
    own.remove('t1');
    expect(own.challengeResponse('t1')).toBeUndefined();
    expect(own.size).toBe(0);
  });
});

describe('readCertificate', () => {
  it('reads the names (common name and DNS alt names, lower-cased, once each), the validity and the issuer', async () => {
    const material = await selfSigned(['API.Expose.test', '*.expose.test', 'api.expose.test'], 30);
    expect(material.names).toEqual(['api.expose.test', '*.expose.test']);
    expect(material.notAfterMs - material.notBeforeMs).toBe(30 * 86_400_000);
    expect(Math.abs(material.notBeforeMs - Date.now())).toBeLessThan(60 * 60_000);
    expect(material.issuer).toBe('API.Expose.test');
  });
});

describe('name matching', () => {
  it('matches exactly or one label under a wildcard, case-insensitively', () => {
    expect(nameMatches('*.expose.test', 'a.expose.test')).toBe(true);
    expect(nameMatches('*.expose.test', 'A.EXPOSE.TEST.')).toBe(true);
    expect(nameMatches('*.expose.test', 'a.b.expose.test')).toBe(false);
    expect(nameMatches('*.expose.test', 'expose.test')).toBe(false);
    expect(nameMatches('api.expose.test', 'api.expose.test')).toBe(true);
    expect(nameMatches('api.expose.test', 'x.api.expose.test')).toBe(false);
    expect(covers({ names: ['*.expose.test', 'expose.test'] }, ['expose.test', 'x.expose.test'])).toBe(true);
    expect(covers({ names: ['*.expose.test'] }, ['expose.test'])).toBe(false);
  });
});

describe('tlsEntries', () => {
  it('puts the default certificate first without serverName, then each name once', async () => {
    const api = await selfSigned(['api.expose.test']);
    const wildcard = await selfSigned(['*.expose.test', 'expose.test']);
    const entries = tlsEntries(new Map([['*.expose.test', wildcard], ['api.expose.test', api]]), 'api.expose.test');
    expect(entries.map((e) => [e.serverName, e.cert === api.certPem ? 'api' : 'wildcard'])).toEqual([
      [undefined, 'api'],
      ['*.expose.test', 'wildcard'],
      ['expose.test', 'wildcard'],
      ['api.expose.test', 'api'],
    ]);
    expect(tlsEntries(new Map([['*.expose.test', wildcard]]), 'api.expose.test')[0]).toEqual({ cert: wildcard.certPem, key: wildcard.keyPem });
    expect(tlsEntries(new Map(), 'api.expose.test')).toEqual([]);
  });
});

describe('CertificateStore', () => {
  it('creates one account key and hands the same one back', async () => {
    const db = openTestDb();
    const store = new CertificateStore(db.db);
    const key = await store.accountKey();
    expect(key).toStartWith('-----BEGIN PRIVATE KEY-----');
    expect(await new CertificateStore(db.db).accountKey()).toBe(key);
    expect(db.sqlite.query("SELECT count(*) AS n FROM settings WHERE key = 'acme_account_key'").get()).toEqual({ n: 1 });
  });

  it('keeps a certificate with its key, CA and times in tls_certificates, replaced in place', async () => {
    const db = openTestDb();
    const store = new CertificateStore(db.db);
    const first = await selfSigned(['api.expose.test']);
    const second = await selfSigned(['api.expose.test']);
    store.put('api.expose.test', 'https://ca.test/dir', first, false, 1_700_000_000_000);
    store.put('api.expose.test', 'https://ca.test/dir', second, false, 1_700_000_001_000);
    const row = db.sqlite.query('SELECT * FROM tls_certificates').all() as Array<Record<string, unknown>>;
    expect(row).toEqual([
      {
        name: 'api.expose.test',
        directory_url: 'https://ca.test/dir',
        cert_pem: second.certPem,
        key_pem: second.keyPem,
        not_before: Math.floor(second.notBeforeMs / 1000),
        not_after: Math.floor(second.notAfterMs / 1000),
        issuer: 'api.expose.test',
        on_demand: 0,
        updated_at: 1_700_000_001,
      },
    ]);
    expect(store.get('api.expose.test')).toEqual({ name: 'api.expose.test', directoryUrl: 'https://ca.test/dir', material: second, onDemand: false });
    store.delete('api.expose.test');
    expect(store.get('api.expose.test')).toBeUndefined();
  });
});
