/** The tunnel side's settings, with every interval in milliseconds so tests can run them fast. */
import {
  ALWAYS_RESERVED_SUBDOMAINS,
  DEFAULT_AUTH_TIMEOUT_MS,
  DEFAULT_CONNECTION_WINDOW_BYTES,
  DEFAULT_HEARTBEAT_INTERVAL_MS,
  DEFAULT_PEER_DEAD_AFTER_MS,
  DEFAULT_STREAM_WINDOW_BYTES,
} from './protocol.ts';

/** EXPOSE_PUBLIC_URL's default. */
export const DEFAULT_PUBLIC_URL = 'http://{subdomain}.{domain}:{port}';

/** What the relay needs to know. */
export interface TunnelSettings {
  /** Normalised (lower-case, no trailing dot). */
  readonly domain: string;
  /** `public_url` for a subdomain. */
  readonly publicUrl: (subdomain: string) => string;
  /** Names nobody may register: `api`, `www` and EXPOSE_RESERVED_SUBDOMAINS. */
  readonly reserved: ReadonlySet<string>;
  /** Live tunnels per user; 0 = no limit. */
  readonly maxTunnelsPerUser: number;
  /** Visitor requests in flight per tunnel; 0 = no limit. */
  readonly maxStreams: number;
  /** How long the local service has to send response headers before the visitor gets 504. */
  readonly responseTimeoutMs: number;
  /** How long a dropped tunnel's subdomain is held for its owner. */
  readonly graceMs: number;
  readonly heartbeatMs: number;
  readonly deadAfterMs: number;
  readonly authTimeoutMs: number;
  /** Flow-control window per stream and per connection, in bytes. */
  readonly streamWindowBytes: number;
  readonly connectionWindowBytes: number;
  /** How often live tunnels are checked against the database for revoked keys and deleted users. */
  readonly revocationCheckMs: number;
}

/** Settings from the server's config; `overrides` is for tests (intervals in ms). */
export function tunnelSettings(
  config: {
    tunnelDomain: string;
    /** A template with `{subdomain}`, `{domain}` and `{port}`; unset: `http://{subdomain}.{domain}:{port}`. */
    publicUrl: string | undefined;
    reservedSubdomains: readonly string[];
    maxTunnels: number;
    maxStreams: number;
    tunnelTimeoutSeconds: number;
    subdomainGraceSeconds: number;
  },
  /** The port the server really listens on (known once it listens: the setting may be 0). */
  port: () => number,
  overrides: Partial<TunnelSettings> = {},
): TunnelSettings {
  const domain = config.tunnelDomain;
  const template = config.publicUrl ?? DEFAULT_PUBLIC_URL;
  return {
    domain,
    publicUrl: (subdomain) => template.replaceAll('{subdomain}', subdomain).replaceAll('{domain}', domain).replaceAll('{port}', String(port())),
    reserved: new Set([...ALWAYS_RESERVED_SUBDOMAINS, ...config.reservedSubdomains]),
    maxTunnelsPerUser: config.maxTunnels,
    maxStreams: config.maxStreams,
    responseTimeoutMs: config.tunnelTimeoutSeconds * 1000,
    graceMs: config.subdomainGraceSeconds * 1000,
    heartbeatMs: DEFAULT_HEARTBEAT_INTERVAL_MS,
    deadAfterMs: DEFAULT_PEER_DEAD_AFTER_MS,
    authTimeoutMs: DEFAULT_AUTH_TIMEOUT_MS,
    streamWindowBytes: DEFAULT_STREAM_WINDOW_BYTES,
    connectionWindowBytes: DEFAULT_CONNECTION_WINDOW_BYTES,
    revocationCheckMs: 250,
    ...overrides,
  };
}

/** Test-only variables that shorten the tunnel's intervals, in milliseconds (the client reads the same names). */
const INTERVAL_VARIABLES = { EXPOSE_HEARTBEAT_MS: 'heartbeatMs', EXPOSE_DEAD_AFTER_MS: 'deadAfterMs' } as const;

/**
 * Heartbeat overrides from the environment, for end-to-end tests of the compiled server; nobody else
 * needs them, so they are not in `--help`. A malformed value is an error, not silently ignored.
 */
export function intervalsFromEnv(env: Record<string, string | undefined>): Partial<TunnelSettings> {
  const overrides: Partial<Record<(typeof INTERVAL_VARIABLES)[keyof typeof INTERVAL_VARIABLES], number>> = {};
  for (const [variable, key] of Object.entries(INTERVAL_VARIABLES)) {
    const raw = env[variable];
    if (raw === undefined) continue;
    if (!/^[1-9]\d{0,8}$/.test(raw)) throw new RangeError(`${variable}: expected a whole number of milliseconds, got "${raw}"`);
    overrides[key] = Number(raw);
  }
  return overrides;
}
