/**
 * Bun.serve's `tls` list for a set of certificates. As checked on Bun 1.4.5: the first entry is what a
 * handshake gets when no `serverName` matches its SNI (and may lack `serverName`; every other entry
 * must have one); an exact name wins over `*.domain`, whatever the order; `*.domain` matches one
 * label; names compare case-insensitively; of two entries with one `serverName`, the later wins.
 */
import type { CertificateMaterial } from './certificate.ts';

/** One entry of Bun.serve's `tls` array. */
export interface TlsEntry {
  serverName?: string;
  cert: string;
  key: string;
}

/**
 * The entries for `certificates` (by managed name): `defaultName`'s certificate first as the default,
 * then one entry per name of every certificate, each name once (the first certificate listing it wins).
 * Empty when `defaultName` has no certificate and nothing else does either.
 */
export function tlsEntries(certificates: ReadonlyMap<string, CertificateMaterial>, defaultName: string): TlsEntry[] {
  const fallback = certificates.get(defaultName) ?? certificates.values().next().value;
  if (fallback === undefined) return [];
  const entries: TlsEntry[] = [{ cert: fallback.certPem, key: fallback.keyPem }];
  const seen = new Set<string>();
  for (const material of certificates.values()) {
    for (const name of material.names) {
      if (seen.has(name)) continue;
      seen.add(name);
      entries.push({ serverName: name, cert: material.certPem, key: material.keyPem });
    }
  }
  return entries;
}
