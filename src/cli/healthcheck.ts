/**
 * `healthcheck`: asks the local server's /health and exits 0 only on a 200. For container HEALTHCHECKs
 * on images that carry no curl or shell.
 */
import type { Config } from '../config.ts';
import { CliError } from './cli-error.ts';

const HEALTHCHECK_TIMEOUT_MS = 3_000;

/** The address to reach a server listening on `host`: a wildcard listen is reached over loopback. */
function reachableHost(host: string): string {
  if (host === '0.0.0.0' || host === '') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return host.includes(':') ? `[${host}]` : host;
}

/**
 * Resolves when /health answers 200. @throws CliError with the reason otherwise. With TLS on it asks
 * the HTTPS port (the plain one only redirects), naming the API host for SNI, and does not check the
 * certificate: this is a liveness probe of the local process over loopback, not a check of the CA.
 */
export async function healthcheck(config: Config): Promise<string> {
  const tls = config.tlsMode !== 'off';
  const url = tls ? `https://${reachableHost(config.host)}:${config.httpsPort}/health` : `http://${reachableHost(config.host)}:${config.port}/health`;
  let response: Response;
  try {
    response = await fetch(url, {
      signal: AbortSignal.timeout(HEALTHCHECK_TIMEOUT_MS),
      ...(tls ? { tls: { rejectUnauthorized: false, ...(config.apiHost !== undefined ? { serverName: config.apiHost } : {}) } } : {}),
    });
  } catch (error) {
    throw new CliError(`${url}: ${(error as Error).message}`);
  }
  if (response.status !== 200) throw new CliError(`${url}: answered ${response.status}`);
  return `${url}: ok`;
}
