/**
 * `healthcheck`: asks the local server's /health and exits 0 only on a 200 (with ACME, also while the
 * first certificate is awaited: see `healthcheck`). For container HEALTHCHECKs on images that carry
 * no curl or shell.
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
 *
 * With ACME, nothing listens on the HTTPS port until the first certificate arrives, which may take
 * long (DNS not pointed yet, the CA down or rate-limiting). The process is alive all that time, and a
 * restart would only order again at once, spending the CA's limits: a refused HTTPS connection then
 * counts as alive when the plain-HTTP listener answers with its redirect.
 */
export async function healthcheck(config: Config): Promise<string> {
  const host = reachableHost(config.host);
  if (config.tlsMode === 'off') return expectHealthy(`http://${host}:${config.port}/health`, {});
  const url = `https://${host}:${config.httpsPort}/health`;
  try {
    return await expectHealthy(url, { tls: { rejectUnauthorized: false, ...(config.apiHost !== undefined ? { serverName: config.apiHost } : {}) } });
  } catch (error) {
    if (config.tlsMode !== 'acme' || !(error instanceof CliError) || !error.message.includes('ECONNREFUSED')) throw error;
    const plain = `http://${host}:${config.httpPort}/health`;
    const redirect = await answerOf(plain, { redirect: 'manual' }).catch((plainError: Error) => {
      throw new CliError(`${error.message}; ${plainError.message}`);
    });
    if (redirect.status !== 301) throw new CliError(`${url}: refused, and ${plain} answered ${redirect.status}`);
    return `${plain}: alive, waiting for its first certificate (${url} is not listening yet)`;
  }
}

async function answerOf(url: string, init: BunFetchRequestInit): Promise<Response> {
  try {
    return await fetch(url, { ...init, signal: AbortSignal.timeout(HEALTHCHECK_TIMEOUT_MS) });
  } catch (error) {
    throw new CliError(`${url}: ${(error as Error).message}`);
  }
}

async function expectHealthy(url: string, init: BunFetchRequestInit): Promise<string> {
  const response = await answerOf(url, init);
  if (response.status !== 200) throw new CliError(`${url}: answered ${response.status}`);
  return `${url}: ok`;
}
