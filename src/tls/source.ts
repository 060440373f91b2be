/** Where the HTTPS listener's certificates come from: an ACME CA (acme-source.ts) or the operator's files (file-source.ts). */
import type { CertificateMaterial } from './certificate.ts';
import type { Http01Challenges } from './http-challenges.ts';

/** The certificates to serve, kept current by their source. */
export interface CertificateSource {
  /** Current certificates by name, for tlsEntries(). */
  certificates(): Map<string, CertificateMaterial>;
  /** The name whose certificate a handshake without a matching SNI gets (the API host's). */
  readonly defaultName: string;
  /** The HTTP-01 answers the plain-HTTP listener serves (ACME only). */
  readonly challenges: Http01Challenges | undefined;
  /** Names the source is getting certificates for, for the log line while there are none yet. */
  wanted(): string[];
  /** A tunnel was registered at `{subdomain}.{tunnel domain}`: an on-demand source orders its certificate. */
  tunnelRegistered(subdomain: string): void;
  /** Starts ordering and renewing (ACME) or watching the files; never waits for a CA. */
  start(): void;
  /** Stops timers and watchers; an order in flight finishes and is stored. */
  stop(): void;
}

/** A TLS setting that cannot be used (a file that cannot be read, a key that does not match): one line, names the setting. */
export class TlsSetupError extends Error {
  override name = 'TlsSetupError';
}
