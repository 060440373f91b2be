/**
 * The ACME account against Pebble, without a contact email (it is optional): two orders started
 * together on a fresh issuer register one account between them, and after a restart (a new issuer,
 * the same key) the existing account is found and orders go on. Both failed before: acme-client's
 * own registration sent an empty account update, which Pebble refuses.
 */
import { afterAll, beforeAll, expect, it } from 'bun:test';
import { AcmeIssuer } from '../../src/tls/acme.ts';
import { CertificateStore } from '../../src/tls/store.ts';
import { describeWithPebble, type Pebble } from '../helpers/pebble.ts';
import { FAST_POLL, openTestDb, usePebble } from './helpers.ts';

const TEST_TIMEOUT_MS = 60_000;
const describePebble = await describeWithPebble('the ACME account tests');

describePebble('the ACME account, without an email', () => {
  const fixture = usePebble(TEST_TIMEOUT_MS);
  const { challenges } = fixture;
  let pebble: Pebble;
  beforeAll(() => {
    pebble = fixture.pebble;
  });

  it('is registered once for orders started together, and found again by a new issuer with the same key', async () => {
    const accountKeyPem = await new CertificateStore(openTestDb().db).accountKey();
    const issuer = () => new AcmeIssuer({ directoryUrl: pebble.directoryUrl, accountKeyPem, extraCaPem: pebble.listenerCaPem, http01: challenges, requestRetries: 0, ...FAST_POLL });
    const first = issuer();
    const together = await Promise.all([first.issue(['a.account.test'], 'http-01'), first.issue(['b.account.test'], 'http-01')]);
    expect(together.map((c) => c.names)).toEqual([['a.account.test'], ['b.account.test']]);
    // A restart: a new client, the account already at the CA.
    const restarted = await issuer().issue(['c.account.test'], 'http-01');
    expect(restarted.names).toEqual(['c.account.test']);
  }, TEST_TIMEOUT_MS);
});
