/**
 * On-demand HTTP-01 certificates for tunnel hosts, for when no DNS provider gives the wildcard: one
 * certificate per `{subdomain}.{domain}`, ordered the first time it is asked for, at most
 * `maxCertificates` of them (the least recently asked-for one is dropped for a new one).
 *
 * Every new host is a new certificate, and CAs limit those: Let's Encrypt issues about 50 per
 * registered domain per week (renewals of the same names aside). Random subdomains burn through that
 * in an afternoon; a wildcard by DNS-01 has no such limit. Hence the warning when this mode is on.
 */
import { systemClock, type Clock } from '../lib/clock.ts';
import type { Logger } from '../lib/logger.ts';
import type { CertificateMaterial } from './certificate.ts';
import type { CertificateManager } from './manager.ts';
import type { CertificateStore } from './store.ts';

/** Let's Encrypt's limit of new certificates per registered domain per week (letsencrypt.org/docs/rate-limits). */
export const LETS_ENCRYPT_CERTIFICATES_PER_DOMAIN_PER_WEEK = 50;

/** A host that may not have an on-demand certificate (not a live tunnel's, or not under the tunnel domain). */
export class OnDemandRefusedError extends Error {
  override name = 'OnDemandRefusedError';
}

export interface OnDemandOptions {
  manager: CertificateManager;
  store: CertificateStore;
  logger: Logger;
  /** Most on-demand certificates held (and renewed) at once. */
  maxCertificates: number;
  /**
   * Whether `hostname` may get a certificate now: the caller's rule, e.g. one label under the tunnel
   * domain whose subdomain has a live tunnel. Asked again at renewal: a host no longer allowed and
   * not asked for since its certificate was issued is dropped rather than renewed.
   */
  allow: (hostname: string) => boolean;
  clock?: Clock;
}

const normalise = (hostname: string) => hostname.trim().toLowerCase().replace(/\.$/, '');

/** The bounded set of on-demand certificates, least recently asked-for first. */
export class OnDemandCertificates {
  /** Host → when it was last asked for (clock ms); Map order is the eviction order. */
  private readonly recent = new Map<string, number>();
  private readonly clock: Clock;

  constructor(private readonly options: OnDemandOptions) {
    if (options.maxCertificates < 1) throw new Error('maxCertificates must be at least 1');
    this.clock = options.clock ?? systemClock;
  }

  /**
   * Takes back the on-demand certificates kept in the store by an earlier run (the newest, up to the
   * cap): they serve at once and are renewed while wanted. Call before the manager's start().
   */
  load(directoryUrl: string): void {
    const stored = this.options.store.onDemandNames(directoryUrl);
    // Not asked for yet in this run: renewed only if its tunnel is live by then, or it is asked for.
    for (const name of stored.slice(-this.options.maxCertificates)) this.track(name, 0);
    this.options.logger.warn('tls on-demand certificates are on: each new tunnel host is a new certificate', {
      max_certificates: this.options.maxCertificates,
      loaded: this.recent.size,
      hint: `Let's Encrypt issues about ${LETS_ENCRYPT_CERTIFICATES_PER_DOMAIN_PER_WEEK} certificates per registered domain per week; a DNS provider gives one wildcard instead`,
    });
  }

  /**
   * A certificate for `hostname`: one that covers it already (the wildcard, a configured name, an
   * earlier on-demand one), else a new HTTP-01 order. Concurrent calls for one host share one order.
   * @throws OnDemandRefusedError when `allow` says no; the order's error when it fails (and, during
   *   its backoff, at once without a new order); whatever the store throws while evicting (async: every
   *   failure is a rejection, never a throw into the caller, the relay's tunnel registration).
   */
  async ensureCertificate(hostname: string): Promise<CertificateMaterial> {
    const host = normalise(hostname);
    const { manager } = this.options;
    if (this.recent.has(host)) {
      this.recent.delete(host);
      // The manager may have dropped it (not renewed): then it is a new host again.
      if (manager.has(host)) {
        this.recent.set(host, this.clock.now());
        return manager.obtain(host);
      }
    }
    const existing = manager.find(host);
    if (existing !== undefined) return existing;
    if (!this.options.allow(host)) throw new OnDemandRefusedError(`${host} may not have an on-demand certificate`);
    // No await before track(): a second call for the same host finds it and joins the same order.
    this.track(host, this.clock.now());
    return manager.obtain(host);
  }

  /** Hosts held, least recently asked-for first; for tests and status. */
  hosts(): string[] {
    return [...this.recent.keys()].filter((host) => this.options.manager.has(host));
  }

  private track(host: string, askedAtMs: number): void {
    const { manager, logger, maxCertificates } = this.options;
    while (this.recent.size >= maxCertificates) {
      const oldest = this.recent.keys().next().value!;
      this.drop(oldest);
      logger.warn('tls on-demand certificate evicted: the cap is reached', { name: oldest, max_certificates: maxCertificates });
    }
    this.recent.set(host, askedAtMs);
    manager.manage({
      name: host,
      challenge: 'http-01',
      onDemand: true,
      // Renewed while its tunnel is live, or when it was asked for since the certificate was issued.
      keepRenewing: () => this.options.allow(host) || (this.recent.get(host) ?? 0) >= (manager.certificate(host)?.notBeforeMs ?? Number.POSITIVE_INFINITY),
    });
  }

  private drop(host: string): void {
    this.recent.delete(host);
    this.options.manager.unmanage(host, true);
  }
}
