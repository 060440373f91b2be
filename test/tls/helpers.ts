/**
 * What the ACME tests share: a database with its store, a challenge listener on Pebble's HTTP-01
 * port, a manager whose certificates arrive as awaitable events, fake DNS APIs that write into
 * challtestsrv, and a check that a certificate really serves a host name over HTTPS.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'bun:test';
import type { Server } from 'bun';
import { openDb, type DbHandle } from '../../src/db/client.ts';
import { migrate } from '../../src/db/migrate.ts';
import type { Clock } from '../../src/lib/clock.ts';
import { createMemoryLogger } from '../../src/lib/logger.ts';
import { AcmeIssuer, type CertificateIssuer, type ChallengeType } from '../../src/tls/acme.ts';
import { readCertificate, type CertificateMaterial } from '../../src/tls/certificate.ts';
import type { DnsProvider } from '../../src/tls/dns-providers.ts';
import { Http01Challenges } from '../../src/tls/http-challenges.ts';
import { CertificateManager } from '../../src/tls/manager.ts';
import type { RetryPolicy } from '../../src/tls/renewal.ts';
import { tlsEntries } from '../../src/tls/sni.ts';
import { CertificateStore } from '../../src/tls/store.ts';
import { startPebble, type Pebble } from '../helpers/pebble.ts';

/** Fast polling of order status against Pebble, which validates at once. */
export const FAST_POLL = { pollMinMs: 20, pollMaxMs: 200 };
/** Retries in tests: 50 ms, 100, 200, ... up to 1 s. */
export const FAST_RETRY: RetryPolicy = { baseMs: 50, maxMs: 1_000 };

/** A migrated database: a file's path when `path` is given (for restarts), else in memory. */
export function openTestDb(path = ':memory:'): DbHandle {
  const db = openDb(path);
  migrate(db.db);
  return db;
}

/** The plain-HTTP listener Pebble's HTTP-01 checks reach: answers from `challenges` only. */
export function serveChallenges(port: number, challenges: Http01Challenges): Server<undefined> {
  return Bun.serve({
    hostname: '127.0.0.1',
    port,
    fetch: (request) => challenges.respond(request.url) ?? new Response('not a challenge', { status: 404 }),
  });
}

/**
 * A Pebble and the challenge listener on its HTTP-01 port for the tests of the calling describe block:
 * started in its beforeAll, stopped in its afterAll. Read `pebble` from tests and later hooks only.
 */
export function usePebble(timeoutMs: number): { readonly pebble: Pebble; readonly challenges: Http01Challenges } {
  const challenges = new Http01Challenges();
  let pebble: Pebble | undefined;
  let server: Server<undefined> | undefined;
  beforeAll(async () => {
    pebble = await startPebble();
    server = serveChallenges(pebble.httpPort, challenges);
  }, timeoutMs);
  afterAll(async () => {
    server?.stop(true);
    await pebble?.stop();
  });
  return {
    challenges,
    get pebble() {
      if (pebble === undefined) throw new Error('Pebble is not started yet (read it inside a test or a later hook)');
      return pebble;
    },
  };
}

/** An issuer that counts its orders. */
export function counting(issuer: CertificateIssuer): CertificateIssuer & { orders: Array<{ names: readonly string[]; challenge: ChallengeType }> } {
  const orders: Array<{ names: readonly string[]; challenge: ChallengeType }> = [];
  return {
    directoryUrl: issuer.directoryUrl,
    orders,
    issue(names, challenge) {
      orders.push({ names, challenge });
      return issuer.issue(names, challenge);
    },
  };
}

/** A certificate event as the listener would get it. */
export interface CertificateEvent {
  name: string;
  certificate: CertificateMaterial;
}

export interface TestManagerOptions {
  pebble: Pebble;
  challenges: Http01Challenges;
  db: DbHandle;
  dns?: DnsProvider;
  clock?: Clock;
  retry?: RetryPolicy;
  /** acme-client's own retries of one request (2 in production, 2 s apart growing). */
  requestRetries?: number;
  /** Also told of each certificate, after it is recorded (what the listener integration does). */
  onCertificate?: (event: CertificateEvent) => void;
}

/** A manager on Pebble with a memory logger; `nextCertificate(name)` waits for the next event for `name`. */
export async function testManager(options: TestManagerOptions) {
  const store = new CertificateStore(options.db.db);
  const logger = createMemoryLogger();
  const issuer = counting(
    new AcmeIssuer({
      directoryUrl: options.pebble.directoryUrl,
      accountKeyPem: await store.accountKey(),
      email: 'ops@expose.test',
      extraCaPem: options.pebble.listenerCaPem,
      http01: options.challenges,
      dns: options.dns,
      requestRetries: options.requestRetries,
      ...FAST_POLL,
    }),
  );
  const events: CertificateEvent[] = [];
  const waiters: Array<{ name: string; after: number; resolve: (event: CertificateEvent) => void }> = [];
  const manager = new CertificateManager({
    issuer,
    store,
    logger,
    clock: options.clock,
    retry: options.retry ?? FAST_RETRY,
    onCertificate: (name, certificate) => {
      events.push({ name, certificate });
      options.onCertificate?.({ name, certificate });
      for (const waiter of waiters.splice(0)) {
        if (waiter.name === name && events.length > waiter.after) waiter.resolve({ name, certificate });
        else waiters.push(waiter);
      }
    },
  });
  /** The next certificate event for `name` after the ones seen so far; fails with the log after `timeoutMs`. */
  const nextCertificate = (name: string, timeoutMs = 30_000) =>
    new Promise<CertificateEvent>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no certificate for ${name} within ${timeoutMs} ms: ${logger.lines.join('')}`)), timeoutMs);
      waiters.push({ name, after: events.length, resolve: (event) => (clearTimeout(timer), resolve(event)) });
    });
  /** Waits until a log line contains `text`. */
  const logged = async (text: string, timeoutMs = 30_000) => {
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline) {
      const line = logger.lines.find((l) => l.includes(text));
      if (line !== undefined) return JSON.parse(line) as Record<string, unknown>;
      await Bun.sleep(10);
    }
    throw new Error(`no log line with "${text}" in: ${logger.lines.join('')}`);
  };
  return { manager, store, issuer, logger, events, nextCertificate, logged };
}

/**
 * Serves `certificates` the way the listener will (tlsEntries, default `defaultName`), and fetches
 * `https://{hostname}/` from it trusting only `rootPem`. The connection goes to 127.0.0.1; `serverName`
 * sets both the SNI and the name the certificate is checked against, so no DNS is involved.
 * @returns the body, or throws what fetch threw (an untrusted or mismatched certificate).
 */
export async function fetchOverTls(certificates: ReadonlyMap<string, CertificateMaterial>, defaultName: string, hostname: string, rootPem: string): Promise<string> {
  const server = Bun.serve({ hostname: '127.0.0.1', port: 0, tls: tlsEntries(certificates, defaultName), fetch: () => new Response(`hello ${hostname}`) });
  try {
    const response = await fetch(`https://127.0.0.1:${server.port}/`, { tls: { ca: rootPem, serverName: hostname }, keepalive: false });
    return await response.text();
  } finally {
    server.stop(true);
  }
}

/**
 * The TXT records a fake DNS API holds. challtestsrv keeps a list of values per name, so each change
 * rewrites that name's list there too (when a Pebble is given; without one the zone is memory only).
 */
export class FakeZone {
  private readonly values = new Map<string, string[]>();
  constructor(private readonly pebble?: Pebble) {}

  async add(fqdn: string, value: string): Promise<void> {
    const name = fqdn.replace(/\.$/, '');
    this.values.set(name, [...(this.values.get(name) ?? []), value]);
    await this.sync(name);
  }

  async remove(fqdn: string, value?: string): Promise<void> {
    const name = fqdn.replace(/\.$/, '');
    this.values.set(name, (this.values.get(name) ?? []).filter((v) => value !== undefined && v !== value));
    await this.sync(name);
  }

  /** Keeps only the newest `count` values at `fqdn` (acme-dns keeps two). */
  async keepNewest(fqdn: string, count: number): Promise<void> {
    const name = fqdn.replace(/\.$/, '');
    this.values.set(name, (this.values.get(name) ?? []).slice(-count));
    await this.sync(name);
  }

  get(fqdn: string): string[] {
    return this.values.get(fqdn.replace(/\.$/, '')) ?? [];
  }

  private async sync(name: string): Promise<void> {
    if (this.pebble === undefined) return;
    await this.pebble.clearTxt(`${name}.`);
    for (const value of this.values.get(name) ?? []) await this.pebble.setTxt(`${name}.`, value);
  }
}

/**
 * A self-signed certificate for `names` made by openssl, valid for `days` from now: what a fake issuer
 * hands out where the test is about the manager, not the CA.
 */
export async function selfSigned(names: readonly string[], days = 90): Promise<CertificateMaterial> {
  const dir = mkdtempSync(join(tmpdir(), 'expose-cert-'));
  try {
    const san = names.map((n) => `DNS:${n}`).join(',');
    const proc = Bun.spawn(
      ['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', String(days), '-subj', `/CN=${names[0]}`,
        '-addext', `subjectAltName=${san}`, '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')],
      { stdin: 'ignore', stdout: 'ignore', stderr: 'pipe' },
    );
    if ((await proc.exited) !== 0) throw new Error(`openssl: ${await new Response(proc.stderr).text()}`);
    return readCertificate(readFileSync(join(dir, 'cert.pem'), 'utf8'), readFileSync(join(dir, 'key.pem'), 'utf8'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * An issuer under the test's control: hands out self-signed certificates, counts its orders, fails
 * while `failWith` is set, and holds each order until `release()` while `hold` is set.
 */
export class FakeIssuer implements CertificateIssuer {
  readonly directoryUrl = 'https://ca.test/directory';
  readonly orders: Array<{ names: readonly string[]; challenge: ChallengeType }> = [];
  failWith: Error | undefined;
  hold = false;
  private readonly held: Array<() => void> = [];

  async issue(names: readonly string[], challenge: ChallengeType): Promise<CertificateMaterial> {
    this.orders.push({ names, challenge });
    if (this.hold) await new Promise<void>((resolve) => this.held.push(resolve));
    if (this.failWith !== undefined) throw this.failWith;
    return selfSigned(names);
  }

  /** Lets every held order go on. */
  release(): void {
    for (const resolve of this.held.splice(0)) resolve();
  }
}
