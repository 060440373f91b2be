/** What a certificate is to the rest of the server: PEMs, names, validity; and which host names it covers. */
import { crypto as acmeCrypto } from 'acme-client';

/** A certificate chain and its private key, as Bun.serve's `tls` takes them, with what was read from the leaf. */
export interface CertificateMaterial {
  /** The leaf first, then the intermediates (as the CA sent them). */
  certPem: string;
  /** The leaf's private key (PKCS#8 PEM). Never logged. */
  keyPem: string;
  /** Names in the leaf (subjectAltName, and the common name), lower-case; `*.domain` for a wildcard. */
  names: string[];
  notBeforeMs: number;
  notAfterMs: number;
  /** Common name of the issuing CA (e.g. `R11`), for logs and the store. */
  issuer: string;
}

/**
 * Reads names, validity and issuer from the first certificate of a PEM chain.
 * @throws when `certPem` holds no parsable certificate.
 */
export function readCertificate(certPem: string, keyPem: string): CertificateMaterial {
  const info = acmeCrypto.readCertificateInfo(certPem);
  const names = [info.domains.commonName, ...info.domains.altNames].filter((n): n is string => typeof n === 'string' && n !== '');
  return {
    certPem,
    keyPem,
    names: [...new Set(names.map((n) => n.toLowerCase()))],
    notBeforeMs: info.notBefore.getTime(),
    notAfterMs: info.notAfter.getTime(),
    issuer: info.issuer.commonName ?? '',
  };
}

/**
 * Whether a certificate name matches `hostname` as a TLS client checks it (RFC 6125): exactly, or
 * `*.domain` for one more label only (`a.domain`, never `a.b.domain` nor `domain` itself).
 */
export function nameMatches(certName: string, hostname: string): boolean {
  const name = certName.toLowerCase();
  const host = hostname.toLowerCase().replace(/\.$/, '');
  if (!name.startsWith('*.')) return name === host;
  const dot = host.indexOf('.');
  return dot > 0 && host.slice(dot + 1) === name.slice(2);
}

/** Whether every one of `hostnames` is matched by one of the certificate's names. */
export function covers(material: Pick<CertificateMaterial, 'names'>, hostnames: readonly string[]): boolean {
  return hostnames.every((host) => material.names.some((name) => nameMatches(name, host)));
}
