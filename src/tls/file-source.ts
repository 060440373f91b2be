/**
 * Certificates from the operator's files (certbot, a company CA, ...): one PEM chain and its key, read
 * at start (a bad pair stops start-up with one line) and again on SIGHUP or when either file changes
 * (certbot's renewal swaps the symlinks in its `live/` folder, so the folders are watched, not the
 * files). A pair that fails to load on reload is logged and the previous one keeps serving.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { rfc3339, unixSeconds } from '../lib/clock.ts';
import type { Logger } from '../lib/logger.ts';
import { nameMatches, readCertificate, type CertificateMaterial } from './certificate.ts';
import { TlsSetupError, type CertificateSource } from './source.ts';

/** The name the one certificate is kept under. */
const FILE_CERTIFICATE = 'files';
/** Changes closer together than this are one reload: an editor or certbot writes both files in a burst. */
export const FILE_CHANGE_DEBOUNCE_MS = 500;
/** A certificate this close to its end is logged as a warning at each load. */
const EXPIRY_WARNING_MS = 14 * 86_400_000;

const iso = (ms: number) => rfc3339(unixSeconds(ms));

export interface FileSourceOptions {
  certFile: string;
  keyFile: string;
  /** Names the certificate should cover (the API host, a tunnel host): a warning when it does not. */
  expectedNames: readonly string[];
  logger: Logger;
  /** The certificate changed: the listener swaps. */
  onChange(): void;
  now?: () => number;
  debounceMs?: number;
}

/**
 * Reads and checks the pair. @throws TlsSetupError naming what is wrong (unreadable, not PEM, key of
 * another certificate); never quotes the key.
 */
export function readCertificateFiles(certFile: string, keyFile: string): CertificateMaterial {
  const read = (path: string, setting: string) => {
    try {
      return readFileSync(path, 'utf8');
    } catch (error) {
      throw new TlsSetupError(`${setting}: cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
  };
  const certPem = read(certFile, 'EXPOSE_TLS_CERT_FILE');
  const keyPem = read(keyFile, 'EXPOSE_TLS_KEY_FILE');
  let material: CertificateMaterial;
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(certPem);
    material = readCertificate(certPem, keyPem, x509);
  } catch {
    throw new TlsSetupError(`EXPOSE_TLS_CERT_FILE: ${certFile} holds no readable PEM certificate`);
  }
  let matches: boolean;
  try {
    matches = x509.checkPrivateKey(createPrivateKey(keyPem));
  } catch {
    throw new TlsSetupError(`EXPOSE_TLS_KEY_FILE: ${keyFile} holds no readable PEM private key`);
  }
  if (!matches) throw new TlsSetupError(`EXPOSE_TLS_KEY_FILE: ${keyFile} is not the key of the certificate in ${certFile}`);
  return material;
}

/** The operator's certificate, reloaded on request or on change. `reload` is what SIGHUP calls. */
export interface FileCertificateSource extends CertificateSource {
  /** Reads the files again; a new pair is served from the next connection on. Returns whether it changed. */
  reload(reason: string): boolean;
}

/** Loads the pair now. @throws TlsSetupError when it cannot be served. */
export function fileCertificates(options: FileSourceOptions): FileCertificateSource {
  const { certFile, keyFile, logger } = options;
  const now = options.now ?? Date.now;
  let current = readCertificateFiles(certFile, keyFile);
  const watchers: FSWatcher[] = [];
  let debounce: ReturnType<typeof setTimeout> | undefined;

  const describe = (material: CertificateMaterial) => {
    const fields = { names: material.names, issuer: material.issuer, not_after: iso(material.notAfterMs) };
    if (material.notAfterMs <= now()) logger.error('TLS CERTIFICATE EXPIRED: clients refuse it; replace the files and send SIGHUP', fields);
    else if (material.notAfterMs - now() < EXPIRY_WARNING_MS) logger.warn('tls certificate expires within 14 days; replace the files', fields);
    const uncovered = options.expectedNames.filter((host) => !material.names.some((name) => nameMatches(name, host)));
    if (uncovered.length > 0) logger.warn('tls certificate does not cover every host this server answers', { ...fields, not_covered: uncovered });
    return fields;
  };
  logger.info('tls certificate files loaded', { cert_file: certFile, key_file: keyFile, ...describe(current) });

  const source: FileCertificateSource = {
    certificates: () => new Map([[FILE_CERTIFICATE, current]]),
    defaultName: FILE_CERTIFICATE,
    challenges: undefined,
    wanted: () => [FILE_CERTIFICATE],
    tunnelRegistered() {},
    reload(reason) {
      let next: CertificateMaterial;
      try {
        next = readCertificateFiles(certFile, keyFile);
      } catch (error) {
        logger.error('tls certificate files could not be reloaded; the previous certificate still serves', { reason, error: (error as Error).message, not_after: iso(current.notAfterMs) });
        return false;
      }
      if (next.certPem === current.certPem && next.keyPem === current.keyPem) {
        logger.debug('tls certificate files unchanged', { reason });
        return false;
      }
      current = next;
      logger.info('tls certificate reloaded', { reason, ...describe(next) });
      options.onChange();
      return true;
    },
    start() {
      const wanted = new Map<string, Set<string>>();
      for (const file of [certFile, keyFile]) {
        const dir = dirname(resolve(file));
        wanted.set(dir, (wanted.get(dir) ?? new Set()).add(basename(file)));
      }
      for (const [dir, names] of wanted) {
        try {
          const watcher = watch(dir, { persistent: false }, (_event, name) => {
            if (name !== null && !names.has(String(name))) return;
            clearTimeout(debounce);
            debounce = setTimeout(() => source.reload('file changed'), options.debounceMs ?? FILE_CHANGE_DEBOUNCE_MS);
          });
          // A watcher that fails later (the folder removed) is reported, never thrown: SIGHUP still works.
          watcher.on('error', (error) => logger.warn('tls certificate folder no longer watched; reload with SIGHUP', { dir, error: error.message }));
          watchers.push(watcher);
        } catch (error) {
          logger.warn('tls certificate folder cannot be watched; reload with SIGHUP', { dir, error: (error as Error).message });
        }
      }
    },
    stop() {
      clearTimeout(debounce);
      for (const watcher of watchers.splice(0)) watcher.close();
    },
  };
  return source;
}
