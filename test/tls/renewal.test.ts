/**
 * Renewal and failure against a real Pebble: a short-lived certificate renews by itself at two thirds
 * of its life (and a listener swapped on each renewal keeps its open WebSocket); with an injected
 * clock a renewal happens when due; a failed renewal is logged loudly while the old certificate still
 * serves; a CA that is down at start is retried with backoff until it comes up.
 */
import { afterEach, expect, it } from 'bun:test';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import type { Server } from 'bun';
import { ManualClock } from '../../src/lib/clock.ts';
import { Http01Challenges } from '../../src/tls/http-challenges.ts';
import { renewalDueMs } from '../../src/tls/renewal.ts';
import { tlsEntries } from '../../src/tls/sni.ts';
import { describeWithPebble, startPebble, type Pebble, type PebbleOptions } from '../helpers/pebble.ts';
import { fetchOverTls, openTestDb, serveChallenges, testManager } from './helpers.ts';
import { until } from './tls-server.ts';

const API_HOST = 'api.expose.test';
/** Generous: Pebble answers in ~200 ms, but CI machines are shared. */
const TEST_TIMEOUT_MS = 60_000;
const describePebble = await describeWithPebble('the renewal tests');

/** What each test stops: its Pebble, challenge listener, HTTPS listeners. */
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A Pebble of this test's own (some tests take it down) with its challenge listener. */
async function ownPebble(options: PebbleOptions = {}): Promise<{ pebble: Pebble; challenges: Http01Challenges }> {
  const pebble = await startPebble(options);
  cleanups.push(() => pebble.stop());
  const challenges = new Http01Challenges();
  const server = serveChallenges(pebble.httpPort, challenges);
  cleanups.push(() => server.stop(true));
  return { pebble, challenges };
}

/** The serial number of the certificate an HTTPS request to `port` is answered with, checked as `API_HOST`. */
async function servedSerial(port: number, rootPem: string): Promise<string> {
  let serial = '';
  const response = await fetch(`https://127.0.0.1:${port}/`, {
    keepalive: false,
    tls: {
      ca: rootPem,
      serverName: API_HOST,
      checkServerIdentity: (host: string, cert: PeerCertificate) => {
        serial = cert.serialNumber;
        return checkServerIdentity(host, cert);
      },
    },
  });
  expect(await response.text()).toBe('ok');
  return serial;
}

describePebble('certificate renewal against Pebble', () => {
  it('renews a short-lived certificate by itself at two thirds of its life; a listener swapped on renewal keeps its WebSocket', async () => {
    // 4 s of validity: Pebble makes it notBefore + 3 s, so the renewal falls due about 2 s after issue.
    const { pebble, challenges } = await ownPebble({ certificateValiditySeconds: 4 });
    // The swap the listener integration will do: a new Bun.serve with the full list on the same port
    // (reusePort), then the old one stops accepting (stop(false)) and keeps its open connections.
    let listener: Server<undefined> | undefined;
    const retired: Array<Server<undefined>> = [];
    cleanups.push(() => {
      listener?.stop(true);
      for (const old of retired) old.stop(true);
    });
    const t = await testManager({
      pebble,
      challenges,
      db: openTestDb(),
      onCertificate: () => {
        const old = listener;
        listener = Bun.serve({
          hostname: '127.0.0.1',
          port: old?.port ?? 0,
          reusePort: true,
          tls: tlsEntries(t.manager.certificates(), API_HOST),
          fetch: (request, server) => (server.upgrade(request) ? undefined : new Response('ok')),
          websocket: {
            message: (ws, message) => {
              ws.send(`echo ${message}`);
            },
          },
        });
        if (old !== undefined) {
          void old.stop(false);
          retired.push(old);
        }
      },
    });
    cleanups.push(() => t.manager.stop());
    const first = t.nextCertificate(API_HOST);
    t.manager.manage({ name: API_HOST, challenge: 'http-01' });
    void t.manager.start();
    const { certificate: original } = await first;
    const port = listener!.port!;
    const root = pebble.issuingRootPem();
    const originalSerial = await servedSerial(port, root);

    const ws = new WebSocket(`wss://127.0.0.1:${port}/`, { tls: { ca: root, serverName: API_HOST } });
    const received: string[] = [];
    ws.onmessage = (event) => received.push(String(event.data));
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = reject;
    });

    const { certificate: renewed } = await t.nextCertificate(API_HOST);
    expect(renewed.certPem).not.toBe(original.certPem);
    expect(renewed.keyPem).not.toBe(original.keyPem);
    expect(renewed.notAfterMs).toBeGreaterThan(original.notAfterMs);
    expect(t.issuer.orders.length).toBeGreaterThanOrEqual(2);
    expect(await t.logged('tls certificate renewed')).toMatchObject({ name: API_HOST });

    // The WebSocket opened before the renewal still answers, on the retired listener.
    ws.send('after renewal');
    await until(() => received.length > 0, 'the echo through the retired listener');
    expect(received).toEqual(['echo after renewal']);
    ws.close();
    // New connections get a renewed certificate.
    expect(await servedSerial(port, root)).not.toBe(originalSerial);
  }, TEST_TIMEOUT_MS);

  it('renews when the injected clock reaches two thirds of the life, not before', async () => {
    const { pebble, challenges } = await ownPebble({ certificateValiditySeconds: 3600 });
    const clock = new ManualClock(Date.now());
    const t = await testManager({ pebble, challenges, db: openTestDb(), clock });
    t.manager.manage({ name: API_HOST, challenge: 'http-01' });
    await t.manager.renewDue();
    const original = t.manager.certificate(API_HOST)!;
    const dueMs = renewalDueMs(original.notBeforeMs, original.notAfterMs);

    clock.advance(dueMs - clock.now() - 1_000);
    await t.manager.renewDue();
    expect(t.issuer.orders).toHaveLength(1);

    const renewed = t.nextCertificate(API_HOST);
    clock.advance(2_000);
    await t.manager.renewDue();
    expect(t.issuer.orders).toHaveLength(2);
    expect((await renewed).certificate.certPem).not.toBe(original.certPem);
    expect(await fetchOverTls(t.manager.certificates(), API_HOST, API_HOST, pebble.issuingRootPem())).toBe(`hello ${API_HOST}`);
  }, TEST_TIMEOUT_MS);

  it('logs a failed renewal loudly while the old certificate still serves, then renews once the CA is back', async () => {
    const { pebble, challenges } = await ownPebble({ certificateValiditySeconds: 3600 });
    const clock = new ManualClock(Date.now());
    const t = await testManager({ pebble, challenges, db: openTestDb(), clock, requestRetries: 0 });
    t.manager.manage({ name: API_HOST, challenge: 'http-01' });
    await t.manager.renewDue();
    const original = t.manager.certificate(API_HOST)!;

    await pebble.down();
    clock.advance(renewalDueMs(original.notBeforeMs, original.notAfterMs) - clock.now() + 1_000);
    await t.manager.renewDue();
    const line = await t.logged('TLS CERTIFICATE RENEWAL FAILED');
    expect(line).toMatchObject({ level: 'error', name: API_HOST, failures: 1, not_after: new Date(original.notAfterMs).toISOString().replace(/\.\d{3}Z$/, 'Z') });
    expect(String(line.error)).toMatch(/ECONNREFUSED|refused|connect/i);
    expect(t.manager.certificate(API_HOST)).toBe(original);

    // Pebble comes back as a new CA (new root, no accounts): the account is registered again.
    await pebble.up();
    clock.advance(60_000);
    const renewed = t.nextCertificate(API_HOST);
    await t.manager.renewDue();
    expect((await renewed).certificate.certPem).not.toBe(original.certPem);
    expect(await fetchOverTls(t.manager.certificates(), API_HOST, API_HOST, pebble.issuingRootPem())).toBe(`hello ${API_HOST}`);
  }, TEST_TIMEOUT_MS);

  it('keeps retrying with backoff while the CA is down at start, with a clear log line, and gets the certificate once it is up', async () => {
    const { pebble, challenges } = await ownPebble({ start: false });
    const t = await testManager({ pebble, challenges, db: openTestDb(), requestRetries: 0 });
    cleanups.push(() => t.manager.stop());
    t.manager.manage({ name: API_HOST, challenge: 'http-01' });
    await t.manager.start();
    expect(t.manager.certificate(API_HOST)).toBeUndefined();
    const line = await t.logged('tls certificate could not be obtained; retrying');
    expect(line).toMatchObject({ level: 'error', name: API_HOST, challenge: 'http-01', directory_url: pebble.directoryUrl, failures: 1 });
    expect(String(line.error)).toMatch(/ECONNREFUSED|refused|connect/i);
    // The timer retries by itself, the delay doubling (50 ms, 100, 200, ... capped at 1 s in tests).
    await t.logged('"failures":3');

    const obtained = t.nextCertificate(API_HOST);
    await pebble.up();
    await obtained;
    expect(await fetchOverTls(t.manager.certificates(), API_HOST, API_HOST, pebble.issuingRootPem())).toBe(`hello ${API_HOST}`);
    expect(await t.logged('tls certificate obtained')).toMatchObject({ name: API_HOST });
  }, TEST_TIMEOUT_MS);
});
