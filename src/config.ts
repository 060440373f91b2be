/**
 * Configuration: every setting from an environment variable or the same-named flag (flags win),
 * validated once at start-up into a frozen object. A bad value throws ConfigError naming the setting.
 */
import { LOG_LEVELS, type LogLevel } from './lib/logger.ts';
import { PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH_FLOOR } from './lib/password.ts';
import { parseCidrList, parseIp, type Cidr } from './lib/client-ip.ts';

/** The validated settings the server runs with. */
export interface Config {
  readonly host: string;
  readonly port: number;
  readonly dbPath: string;
  /** Undefined when not configured: the server then generates one and keeps it in the database. */
  readonly jwtSecret: string | undefined;
  readonly registration: 'open' | 'closed';
  readonly passwordMinLength: number;
  readonly maxApiKeys: number;
  /** Requests per minute per client IP for register/login; 0 turns the class off. */
  readonly rateLimitAuth: number;
  /** Requests per minute per account (or IP) for every other /api/v1 route; 0 turns the class off. */
  readonly rateLimitApi: number;
  readonly trustedProxies: readonly Cidr[];
  readonly logLevel: LogLevel;
  /** Tunnels live at `{subdomain}.{tunnelDomain}`; normalised (lower-case, no trailing dot). */
  readonly tunnelDomain: string;
  /** `public_url` template with `{subdomain}` (and `{domain}`, `{port}`); undefined: `http://{subdomain}.{domain}:{port}`. */
  readonly publicUrl: string | undefined;
  readonly reservedSubdomains: readonly string[];
  /** Live tunnels per user; 0 = no limit. */
  readonly maxTunnels: number;
  /** Visitor requests in flight per tunnel; 0 = no limit. */
  readonly maxStreams: number;
  readonly tunnelTimeoutSeconds: number;
  readonly subdomainGraceSeconds: number;
}

/** A bad setting: the message is the one line printed before exiting. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

interface Setting<K extends keyof Config> {
  key: K;
  env: string;
  /** Also read when `env` is unset (PORT for EXPOSE_PORT, as platforms set it). */
  envAlias?: string;
  flag: string;
  defaultText: string;
  help: string;
  parse: (raw: string | undefined, name: string) => Config[K];
}

function integer(raw: string, name: string, min: number, max: number): number {
  if (!/^\d+$/.test(raw.trim())) throw new ConfigError(`${name}: expected a whole number, got "${raw}"`);
  const value = Number(raw.trim());
  if (value < min || value > max) throw new ConfigError(`${name}: must be between ${min} and ${max}, got ${value}`);
  return value;
}

/** A host name label (RFC 1123): letters, digits and inner hyphens, 1 to 63 characters. */
const HOST_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i;
const HOST_NAME_MAX_LENGTH = 253;

/**
 * The listen address: an IP literal (IPv6 also in brackets) or a plausible host name. Checked here
 * because Bun's own refusal of a bad one reads "Is port 3000 in use?", which names the wrong setting.
 * A name whose last label is all digits is a mistyped IPv4 address (`999.1.1.1`), never a host name.
 */
function parseHost(raw: string, name: string): string {
  let value = raw.trim();
  if (value === '') throw new ConfigError(`${name}: must not be empty`);
  if (value.startsWith('[') && value.endsWith(']') && value.includes(':') && parseIp(value.slice(1, -1))) value = value.slice(1, -1);
  if (parseIp(value)) return value;
  const labels = (value.endsWith('.') ? value.slice(0, -1) : value).split('.');
  const plausible =
    !value.includes(':') &&
    value.length <= HOST_NAME_MAX_LENGTH &&
    labels.every((label) => HOST_LABEL.test(label)) &&
    !/^\d+$/.test(labels.at(-1)!);
  if (!plausible) throw new ConfigError(`${name}: "${raw}" is not an IP address or host name (e.g. 0.0.0.0, 127.0.0.1, ::, localhost)`);
  return value;
}

/** EXPOSE_TUNNEL_DOMAIN: a host name of one or more labels (`localhost`, `expose.example.com`). */
function parseTunnelDomain(raw: string, name: string): string {
  const value = raw.trim().toLowerCase().replace(/\.$/, '');
  const labels = value.split('.');
  if (value.length > HOST_NAME_MAX_LENGTH - 64 || !labels.every((label) => HOST_LABEL.test(label)) || /^\d+$/.test(labels.at(-1)!)) {
    throw new ConfigError(`${name}: "${raw}" is not a domain name (e.g. localhost, expose.example.com)`);
  }
  return value;
}

/** EXPOSE_PUBLIC_URL: an http(s) URL template holding `{subdomain}`. */
function parsePublicUrl(raw: string | undefined, name: string): string | undefined {
  if (raw === undefined || raw.trim() === '') return undefined;
  const value = raw.trim();
  if (!value.includes('{subdomain}')) throw new ConfigError(`${name}: must contain {subdomain}, e.g. https://{subdomain}.expose.example.com`);
  let url: URL;
  try {
    url = new URL(value.replaceAll('{subdomain}', 'x').replaceAll('{domain}', 'example.com').replaceAll('{port}', '1'));
  } catch {
    throw new ConfigError(`${name}: "${raw}" is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ConfigError(`${name}: must start with http:// or https://`);
  return value.replace(/\/+$/, '');
}

/** EXPOSE_RESERVED_SUBDOMAINS: comma-separated names. */
function parseReserved(raw: string | undefined, name: string): readonly string[] {
  const names = (raw ?? '').split(',').map((n) => n.trim().toLowerCase()).filter(Boolean);
  for (const n of names) if (!HOST_LABEL.test(n)) throw new ConfigError(`${name}: "${n}" is not a subdomain label`);
  return Object.freeze(names);
}

/** Every setting, in the order `--help` lists them. */
export const SETTINGS: readonly Setting<keyof Config>[] = [
  { key: 'host', env: 'EXPOSE_HOST', flag: '--host', defaultText: '0.0.0.0', help: 'listen address: an IPv4 or IPv6 address or a host name',
    parse: (raw, name) => parseHost(raw ?? '0.0.0.0', name) },
  { key: 'port', env: 'EXPOSE_PORT', envAlias: 'PORT', flag: '--port', defaultText: '3000', help: 'listen port (0 picks a free one)',
    parse: (raw, name) => integer(raw ?? '3000', name, 0, 65535) },
  { key: 'dbPath', env: 'EXPOSE_DB', flag: '--db', defaultText: './expose.db', help: 'SQLite file (created, WAL mode); :memory: allowed',
    parse: (raw, name) => {
      const value = raw ?? './expose.db';
      if (value.trim() === '') throw new ConfigError(`${name}: must not be empty`);
      return value;
    } },
  { key: 'jwtSecret', env: 'EXPOSE_JWT_SECRET', flag: '--jwt-secret', defaultText: 'generated', help: 'HS256 secret, at least 32 bytes; generated and kept in the database when unset',
    parse: (raw, name) => {
      if (raw === undefined) return undefined;
      if (Buffer.byteLength(raw, 'utf8') < 32) throw new ConfigError(`${name}: must be at least 32 bytes long`);
      return raw;
    } },
  { key: 'registration', env: 'EXPOSE_REGISTRATION', flag: '--registration', defaultText: 'open', help: 'open or closed',
    parse: (raw, name) => {
      const value = (raw ?? 'open').trim().toLowerCase();
      if (value !== 'open' && value !== 'closed') throw new ConfigError(`${name}: must be "open" or "closed", got "${raw}"`);
      return value;
    } },
  { key: 'passwordMinLength', env: 'EXPOSE_PASSWORD_MIN_LENGTH', flag: '--password-min-length', defaultText: '8', help: `minimum password length, ${PASSWORD_MIN_LENGTH_FLOOR} or more`,
    parse: (raw, name) => integer(raw ?? '8', name, PASSWORD_MIN_LENGTH_FLOOR, PASSWORD_MAX_LENGTH) },
  { key: 'maxApiKeys', env: 'EXPOSE_MAX_API_KEYS', flag: '--max-api-keys', defaultText: '100', help: 'live API keys per user',
    parse: (raw, name) => integer(raw ?? '100', name, 1, 1_000_000) },
  { key: 'rateLimitAuth', env: 'EXPOSE_RATE_LIMIT_AUTH', flag: '--rate-limit-auth', defaultText: '10', help: 'register/login requests per minute per client IP; 0 turns it off',
    parse: (raw, name) => integer(raw ?? '10', name, 0, 1_000_000) },
  { key: 'rateLimitApi', env: 'EXPOSE_RATE_LIMIT_API', flag: '--rate-limit-api', defaultText: '100', help: 'other /api/v1 requests per minute per account or IP; 0 turns it off',
    parse: (raw, name) => integer(raw ?? '100', name, 0, 1_000_000) },
  { key: 'trustedProxies', env: 'EXPOSE_TRUSTED_PROXIES', flag: '--trusted-proxies', defaultText: '(none)', help: 'comma-separated CIDRs whose X-Forwarded-For is believed',
    parse: (raw, name) => {
      try {
        return Object.freeze(parseCidrList(raw ?? ''));
      } catch (error) {
        throw new ConfigError(`${name}: ${(error as Error).message}`);
      }
    } },
  { key: 'tunnelDomain', env: 'EXPOSE_TUNNEL_DOMAIN', flag: '--tunnel-domain', defaultText: 'localhost', help: 'tunnels live at {subdomain}.{this domain}',
    parse: (raw, name) => parseTunnelDomain(raw ?? 'localhost', name) },
  { key: 'publicUrl', env: 'EXPOSE_PUBLIC_URL', flag: '--public-url', defaultText: 'http://{subdomain}.{domain}:{port}', help: 'how public_url is written, e.g. https://{subdomain}.expose.example.com behind a TLS proxy',
    parse: (raw, name) => parsePublicUrl(raw, name) },
  { key: 'reservedSubdomains', env: 'EXPOSE_RESERVED_SUBDOMAINS', flag: '--reserved-subdomains', defaultText: '(none)', help: 'comma-separated names nobody may use, besides api and www',
    parse: (raw, name) => parseReserved(raw, name) },
  { key: 'maxTunnels', env: 'EXPOSE_MAX_TUNNELS', flag: '--max-tunnels', defaultText: '10', help: 'live tunnels per user; 0 = no limit',
    parse: (raw, name) => integer(raw ?? '10', name, 0, 1_000_000) },
  { key: 'maxStreams', env: 'EXPOSE_MAX_STREAMS', flag: '--max-streams', defaultText: '256', help: 'visitor requests in flight per tunnel; 0 = no limit',
    parse: (raw, name) => integer(raw ?? '256', name, 0, 1_000_000) },
  { key: 'tunnelTimeoutSeconds', env: 'EXPOSE_TUNNEL_TIMEOUT', flag: '--tunnel-timeout', defaultText: '300', help: 'seconds for the local service to send response headers (then 504)',
    parse: (raw, name) => integer(raw ?? '300', name, 1, 86_400) },
  { key: 'subdomainGraceSeconds', env: 'EXPOSE_SUBDOMAIN_GRACE', flag: '--subdomain-grace', defaultText: '30', help: "seconds a dropped tunnel's subdomain is held for its owner",
    parse: (raw, name) => integer(raw ?? '30', name, 0, 86_400) },
  { key: 'logLevel', env: 'EXPOSE_LOG_LEVEL', flag: '--log-level', defaultText: 'info', help: 'debug, info, warn or error',
    parse: (raw, name) => {
      const value = (raw ?? 'info').trim().toLowerCase() as LogLevel;
      if (!LOG_LEVELS.includes(value)) throw new ConfigError(`${name}: must be one of ${LOG_LEVELS.join(', ')}, got "${raw}"`);
      return value;
    } },
];

/** Reads `--flag value` and `--flag=value` pairs; anything else is an error. */
function parseFlags(argv: readonly string[]): Map<string, string> {
  const known = new Set(SETTINGS.map((s) => s.flag));
  const values = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.indexOf('=');
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    if (!known.has(flag)) throw new ConfigError(`unknown option "${flag}" (see --help)`);
    let value: string | undefined;
    if (eq > 0) value = arg.slice(eq + 1);
    else value = argv[++i];
    if (value === undefined) throw new ConfigError(`${flag}: needs a value`);
    values.set(flag, value);
  }
  return values;
}

/**
 * Validates the environment and command-line flags into a frozen Config.
 * @throws ConfigError with one line naming the bad setting.
 */
export function loadConfig(env: Record<string, string | undefined>, argv: readonly string[] = []): Config {
  const flags = parseFlags(argv);
  const config: Record<string, unknown> = {};
  for (const setting of SETTINGS) {
    const fromFlag = flags.get(setting.flag);
    const fromEnv = env[setting.env] ?? (setting.envAlias ? env[setting.envAlias] : undefined);
    const name = fromFlag !== undefined ? setting.flag : fromEnv === env[setting.env] ? setting.env : setting.envAlias!;
    config[setting.key] = setting.parse(fromFlag ?? fromEnv, name);
  }
  return Object.freeze(config) as unknown as Config;
}

/** The `--help` table: every setting with its flag, variable and default. */
export function settingsHelp(): string {
  return SETTINGS.map((s) => {
    const vars = s.envAlias ? `${s.env} (or ${s.envAlias})` : s.env;
    return `  ${s.flag.padEnd(24)}${vars.padEnd(36)}default ${s.defaultText}\n  ${''.padEnd(24)}${s.help}`;
  }).join('\n');
}
