/**
 * Certificates from an ACME CA, as the settings ask: the API host by HTTP-01; tunnel hosts by one
 * wildcard through a DNS provider (DNS-01), or else, when allowed, one HTTP-01 certificate per live
 * tunnel host, ordered when the tunnel registers (on-demand.ts). Kept in the database, renewed by the
 * manager; nothing here waits for the CA, so a CA that is down never holds the HTTP port back.
 */
import { readFileSync } from 'node:fs';
import type { Config } from '../config.ts';
import type { Db } from '../db/client.ts';
import type { Clock } from '../lib/clock.ts';
import type { Logger } from '../lib/logger.ts';
import { AcmeIssuer } from './acme.ts';
import { acmeDns, cloudflareDns, httpRequestDns, type DnsProvider } from './dns-providers.ts';
import { Http01Challenges } from './http-challenges.ts';
import { CertificateManager } from './manager.ts';
import { OnDemandCertificates, OnDemandRefusedError } from './on-demand.ts';
import type { RetryPolicy } from './renewal.ts';
import { TlsSetupError, type CertificateSource } from './source.ts';
import { CertificateStore } from './store.ts';

/** Faster polling and retries, for tests against Pebble; production uses the defaults of acme.ts and renewal.ts. */
export interface AcmeTuning {
  retry?: RetryPolicy;
  pollMinMs?: number;
  pollMaxMs?: number;
  requestRetries?: number;
}

export interface AcmeSourceDeps {
  config: Config;
  db: Db;
  logger: Logger;
  clock?: Clock;
  /** Whether `hostname` is a live tunnel's host (one label under the tunnel domain): who may get an on-demand certificate. */
  isLiveTunnelHost(hostname: string): boolean;
  /** A certificate was installed or removed: the listener swaps. */
  onChange(): void;
  tuning?: AcmeTuning;
}

/** The DNS provider the settings name, or undefined for `none`. */
export function dnsProviderFrom(config: Config): DnsProvider | undefined {
  const propagationDelayMs = config.dnsPropagationSeconds === undefined ? undefined : config.dnsPropagationSeconds * 1000;
  switch (config.dnsProvider) {
    case 'none':
      return undefined;
    case 'cloudflare':
      return cloudflareDns({ apiToken: config.cloudflareApiToken!, zoneId: config.cloudflareZoneId, propagationDelayMs });
    case 'acme-dns':
      return acmeDns({
        baseUrl: config.acmeDnsUrl!,
        username: config.acmeDnsUsername!,
        password: config.acmeDnsPassword!,
        subdomain: config.acmeDnsSubdomain!,
        propagationDelayMs,
      });
    case 'http':
      return httpRequestDns({ url: config.dnsHttpUrl!, token: config.dnsHttpToken, propagationDelayMs });
  }
}

/** Reads EXPOSE_ACME_CA_FILE. @throws TlsSetupError naming the setting. */
function readCaFile(path: string): string {
  let pem: string;
  try {
    pem = readFileSync(path, 'utf8');
  } catch (error) {
    throw new TlsSetupError(`EXPOSE_ACME_CA_FILE: cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new TlsSetupError(`EXPOSE_ACME_CA_FILE: ${path} holds no PEM certificate`);
  return pem;
}

/** Sets up the issuer, the manager and (without a DNS provider) on-demand certificates. Orders nothing until start(). */
export async function acmeCertificates(deps: AcmeSourceDeps): Promise<CertificateSource> {
  const { config, logger, tuning = {} } = deps;
  const apiHost = config.apiHost!;
  const wildcard = `*.${config.tunnelDomain}`;
  const extraCaPem = config.acmeCaFile === undefined ? undefined : readCaFile(config.acmeCaFile);
  const dns = dnsProviderFrom(config);
  const challenges = new Http01Challenges();
  const store = new CertificateStore(deps.db);
  const issuer = new AcmeIssuer({
    directoryUrl: config.acmeDirectoryUrl,
    accountKeyPem: await store.accountKey(),
    email: config.acmeEmail,
    extraCaPem,
    http01: challenges,
    dns,
    pollMinMs: tuning.pollMinMs,
    pollMaxMs: tuning.pollMaxMs,
    requestRetries: tuning.requestRetries,
  });
  const manager = new CertificateManager({
    issuer,
    store,
    logger,
    clock: deps.clock,
    retry: tuning.retry,
    onCertificate: () => deps.onChange(),
    onRemoved: () => deps.onChange(),
  });

  logger.info('tls acme', {
    directory_url: config.acmeDirectoryUrl,
    api_host: apiHost,
    tunnel_hosts: dns !== undefined ? `${wildcard} by dns-01 through ${dns.kind}` : config.tlsOnDemandMax > 0 ? `on demand by http-01, at most ${config.tlsOnDemandMax}` : 'none',
    email: config.acmeEmail ?? null,
  });
  manager.manage({ name: apiHost, challenge: 'http-01' });
  if (dns !== undefined) manager.manage({ name: wildcard, challenge: 'dns-01' });

  let onDemand: OnDemandCertificates | undefined;
  if (dns === undefined && config.tlsOnDemandMax > 0) {
    onDemand = new OnDemandCertificates({ manager, store, logger, maxCertificates: config.tlsOnDemandMax, allow: deps.isLiveTunnelHost, clock: deps.clock });
    onDemand.load(issuer.directoryUrl);
  } else if (dns === undefined) {
    logger.warn('tls: tunnel hosts have no certificate, so HTTPS visitors to a tunnel get a name mismatch', {
      to_fix: 'set EXPOSE_DNS_PROVIDER (one wildcard certificate by DNS-01) or EXPOSE_TLS_ON_DEMAND_MAX (one certificate per tunnel host by HTTP-01)',
    });
  }

  return {
    certificates: () => manager.certificates(),
    defaultName: apiHost,
    challenges,
    wanted: () => [apiHost, ...(dns !== undefined ? [wildcard] : [])],
    tunnelRegistered(subdomain) {
      if (onDemand === undefined) return;
      const host = `${subdomain}.${config.tunnelDomain}`;
      // The manager logs a failed order itself (and retries it); a refusal means the tunnel is gone already.
      onDemand.ensureCertificate(host).catch((error) => {
        if (!(error instanceof OnDemandRefusedError)) logger.debug('tls on-demand certificate not ready', { name: host });
      });
    },
    start() {
      void manager.start();
    },
    stop() {
      manager.stop();
    },
  };
}
