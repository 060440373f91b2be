/** What a certificate is to the rest of the server: PEMs, names, validity; and which host names it covers. */
import { X509Certificate } from 'node:crypto';

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

/** The common name (`CN=`) among the lines of an X.509 subject or issuer, or ''. */
function commonName(distinguishedName: string): string {
  const line = distinguishedName.split('\n').find((part) => part.startsWith('CN='));
  return line === undefined ? '' : line.slice(3);
}

/**
 * Reads names, validity and issuer from the first certificate of a PEM chain (node:crypto, so files
 * mode loads nothing of the ACME client). `leaf` is that certificate when the caller parsed it already.
 * @throws when `certPem` holds no parsable certificate.
 */
export function readCertificate(certPem: string, keyPem: string, leaf = new X509Certificate(certPem)): CertificateMaterial {
  // subjectAltName: `DNS:a.example, DNS:*.b.example, IP Address:...`; names hold no comma.
  const altNames = (leaf.subjectAltName ?? '').split(', ').flatMap((entry) => (entry.startsWith('DNS:') ? [entry.slice(4)] : []));
  const names = [commonName(leaf.subject), ...altNames].filter((name) => name !== '');
  return {
    certPem,
    keyPem,
    names: [...new Set(names.map((n) => n.toLowerCase()))],
    notBeforeMs: leaf.validFromDate.getTime(),
    notAfterMs: leaf.validToDate.getTime(),
    issuer: commonName(leaf.issuer),
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
