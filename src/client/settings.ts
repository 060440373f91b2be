/** Where the server is and which key to use: flags, then environment, then the saved config, then defaults. */
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
}

/**
 * Resolves the server (flag > EXPOSE_SERVER > saved > default) and the key (flag > EXPOSE_API_KEY >
 * saved). The saved key is used only with the server it was saved for: `--server` pointing
 * elsewhere must not carry the key to a host that never issued it.
 */
export function resolveCredentials(
  flags: { server?: string; key?: string },
  env: Record<string, string | undefined>,
  saved: SavedConfig | undefined,
): Credentials {
  const serverInput = flags.server ?? nonEmpty(env.EXPOSE_SERVER) ?? saved?.server ?? DEFAULT_SERVER_URL;
  const server = normaliseServerUrl(serverInput);
  if (flags.key !== undefined) return { server, apiKey: flags.key, keySource: 'flag' };
  const envKey = nonEmpty(env.EXPOSE_API_KEY);
  if (envKey !== undefined) return { server, apiKey: envKey, keySource: 'environment' };
  if (saved !== undefined && sameServer(saved.server, server)) return { server, apiKey: saved.api_key, keySource: 'config' };
  return { server, apiKey: undefined, keySource: undefined };
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
