/** Where the server is and which key to use: flags, then environment, then the saved config, then defaults. */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { rootCertificates } from 'node:tls';
import type { SavedConfig } from './config-file.ts';
import { ClientError, UsageError } from './errors.ts';

/** The server used when no flag, variable or saved config names one. */
export const DEFAULT_SERVER_URL = 'http://localhost:3000';

/**
 * The server's base URL in one canonical form: http(s), no credentials, query or fragment, no
 * trailing slash (a path prefix is kept, for a server behind a proxy under /expose, say).
 * @throws UsageError otherwise.
 */
export function normaliseServerUrl(input: string): string {
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    throw new UsageError(`not a server URL: ${input} (e.g. https://expose.example.com)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`the server URL must be http or https: ${input}`);
  if (url.username !== '' || url.password !== '') throw new UsageError('the server URL must not hold credentials');
  if (url.search !== '' || url.hash !== '') throw new UsageError(`the server URL takes no query or fragment: ${input}`);
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

/** Where the API key came from; the saved key is only ever sent to the server it was saved for. */
export type KeySource = 'flag' | 'environment' | 'config';

/** The resolved server and key. */
export interface Credentials {
  server: string;
  apiKey: string | undefined;
  keySource: KeySource | undefined;
  /** The extra CA file to trust (flag > EXPOSE_CA_FILE > saved with this server), absolute. */
  caFile?: string;
}

/**
 * Resolves the server (flag > EXPOSE_SERVER > saved > default) and the key (flag > EXPOSE_API_KEY >
 * saved). The saved key is used only with the server it was saved for: `--server` pointing
 * elsewhere must not carry the key to a host that never issued it.
 */
export function resolveCredentials(
  flags: { server?: string; key?: string; caFile?: string },
  env: Record<string, string | undefined>,
  saved: SavedConfig | undefined,
): Credentials {
  const serverInput = flags.server ?? nonEmpty(env.EXPOSE_SERVER) ?? saved?.server ?? DEFAULT_SERVER_URL;
  const server = normaliseServerUrl(serverInput);
  const savedForServer = saved !== undefined && sameServer(saved.server, server) ? saved : undefined;
  const caInput = flags.caFile ?? nonEmpty(env.EXPOSE_CA_FILE) ?? savedForServer?.ca_file;
  const ca = caInput === undefined ? {} : { caFile: resolve(caInput) };
  if (flags.key !== undefined) return { server, apiKey: flags.key, keySource: 'flag', ...ca };
  const envKey = nonEmpty(env.EXPOSE_API_KEY);
  if (envKey !== undefined) return { server, apiKey: envKey, keySource: 'environment', ...ca };
  if (savedForServer !== undefined) return { server, apiKey: savedForServer.api_key, keySource: 'config', ...ca };
  return { server, apiKey: undefined, keySource: undefined, ...ca };
}

/**
 * The certificates to trust for an https server: the system's roots plus the PEM file `caFile` (a
 * self-signed or private server). Undefined without a file: the runtime's defaults, which verify too.
 * @throws UsageError when the file cannot be read or holds no certificate.
 */
export function trustedCertificates(caFile: string | undefined): string[] | undefined {
  if (caFile === undefined) return undefined;
  let pem: string;
  try {
    pem = readFileSync(caFile, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read the CA file ${caFile}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new UsageError(`the CA file ${caFile} holds no PEM certificate`);
  return [...rootCertificates, pem];
}

function sameServer(saved: string, server: string): boolean {
  try {
    return normaliseServerUrl(saved) === server;
  } catch {
    return false;
  }
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

/** Intervals tests set through the environment; the server reads the same names for its side. */
export interface TestIntervals {
  heartbeatIntervalMs?: number;
  deadAfterMs?: number;
}

/**
 * EXPOSE_HEARTBEAT_MS and EXPOSE_DEAD_AFTER_MS: only end-to-end tests set them, to run heartbeat
 * and dead-peer behaviour in milliseconds instead of 30 s and 45 s.
 * @throws UsageError on a value that is not a positive integer.
 */
export function testIntervalsFromEnv(env: Record<string, string | undefined>): TestIntervals {
  return {
    heartbeatIntervalMs: positiveMs(env, 'EXPOSE_HEARTBEAT_MS'),
    deadAfterMs: positiveMs(env, 'EXPOSE_DEAD_AFTER_MS'),
  };
}

function positiveMs(env: Record<string, string | undefined>, name: string): number | undefined {
  const value = nonEmpty(env[name]);
  if (value === undefined) return undefined;
  if (!/^\d{1,9}$/.test(value) || Number(value) === 0) throw new UsageError(`${name} must be a positive whole number of milliseconds`);
  return Number(value);
}

/** The error for a missing key, naming the ways to give one. */
export function missingKeyError(server: string): ClientError {
  return new ClientError(`no API key for ${server}: run \`expose login --server ${server}\` or set EXPOSE_API_KEY`);
}
