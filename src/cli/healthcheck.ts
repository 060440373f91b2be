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

/** Resolves when /health answers 200. @throws CliError with the reason otherwise. */
export async function healthcheck(config: Config): Promise<string> {
  const url = `http://${reachableHost(config.host)}:${config.port}/health`;
  let response: Response;
  try {
    response = await fetch(url, { signal: AbortSignal.timeout(HEALTHCHECK_TIMEOUT_MS) });
  } catch (error) {
    throw new CliError(`${url}: ${(error as Error).message}`);
  }
  if (response.status !== 200) throw new CliError(`${url}: answered ${response.status}`);
  return `${url}: ok`;
}
