/**
 * Configuration: every setting from an environment variable or the same-named flag (flags win),
 * validated once at start-up into a frozen object. A bad value throws ConfigError naming the setting.
 */
import { LOG_LEVELS, type LogLevel } from './lib/logger.ts';
import { PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH_FLOOR } from './lib/password.ts';
import { parseCidrList, parseIp, type Cidr } from './lib/client-ip.ts';
import { routeHost } from './tunnel/host.ts';

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

  /** `off`: plain HTTP on `port` (behind a TLS proxy, or local); `acme`: certificates from an ACME CA; `files`: the operator's. */
  readonly tlsMode: TlsMode;
  /** With TLS on: the HTTPS listener's port (443) and the plain-HTTP one's (80: ACME challenges, redirects). */
  readonly httpsPort: number;
  readonly httpPort: number;
  /** The API's host name (`api.example.com`); required for ACME, which gets it a certificate by HTTP-01. */
  readonly apiHost: string | undefined;
  /** `files` mode: PEM paths, reloaded on SIGHUP or when they change. */
  readonly tlsCertFile: string | undefined;
  readonly tlsKeyFile: string | undefined;
  readonly acmeEmail: string | undefined;
  /** The ACME directory URL (Let's Encrypt production unless set). */
  readonly acmeDirectoryUrl: string;
  /** A PEM file of a CA to trust for the ACME directory's HTTPS (a private or test CA). */
  readonly acmeCaFile: string | undefined;
  /** Who puts up DNS-01 records for the tunnel wildcard; `none`: no wildcard (on-demand certificates, if allowed). */
  readonly dnsProvider: DnsProviderKind;
  readonly cloudflareApiToken: string | undefined;
  readonly cloudflareZoneId: string | undefined;
  readonly acmeDnsUrl: string | undefined;
  readonly acmeDnsUsername: string | undefined;
  readonly acmeDnsPassword: string | undefined;
  readonly acmeDnsSubdomain: string | undefined;
  readonly dnsHttpUrl: string | undefined;
  readonly dnsHttpToken: string | undefined;
  /** Seconds between putting up a DNS-01 record and asking the CA to look; undefined: the provider's default. */
  readonly dnsPropagationSeconds: number | undefined;
  /** Without a DNS provider: at most this many per-tunnel certificates by HTTP-01; 0 turns them off. */
  readonly tlsOnDemandMax: number;
}

export const TLS_MODES = ['off', 'acme', 'files'] as const;
export type TlsMode = (typeof TLS_MODES)[number];
export const DNS_PROVIDERS = ['none', 'cloudflare', 'acme-dns', 'http'] as const;
export type DnsProviderKind = (typeof DNS_PROVIDERS)[number];

/** Let's Encrypt's ACME directories, and the names EXPOSE_ACME_DIRECTORY takes for them. */
export const ACME_DIRECTORIES = {
  production: 'https://acme-v02.api.letsencrypt.org/directory',
  staging: 'https://acme-staging-v02.api.letsencrypt.org/directory',
} as const;

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

/** EXPOSE_PORT when unset. */
export const DEFAULT_PORT = 3000;

/**
 * Whether `labels` make a plausible DNS name of at least `minLabels` labels: every label valid, and
 * the last not all digits (that is a mistyped IPv4 address, `999.1.1.1`, never a host name).
 */
function isDnsName(labels: readonly string[], minLabels = 1): boolean {
  return labels.length >= minLabels && labels.every((label) => HOST_LABEL.test(label)) && !/^\d+$/.test(labels.at(-1)!);
}

/**
 * The listen address: an IP literal (IPv6 also in brackets) or a plausible host name. Checked here
 * because Bun's own refusal of a bad one reads "Is port 3000 in use?", which names the wrong setting.
 */
function parseHost(raw: string, name: string): string {
  let value = raw.trim();
  if (value === '') throw new ConfigError(`${name}: must not be empty`);
  if (value.startsWith('[') && value.endsWith(']') && value.includes(':') && parseIp(value.slice(1, -1))) value = value.slice(1, -1);
  if (parseIp(value)) return value;
  const plausible = !value.includes(':') && value.length <= HOST_NAME_MAX_LENGTH && isDnsName((value.endsWith('.') ? value.slice(0, -1) : value).split('.'));
  if (!plausible) throw new ConfigError(`${name}: "${raw}" is not an IP address or host name (e.g. 0.0.0.0, 127.0.0.1, ::, localhost)`);
  return value;
}

/** EXPOSE_TUNNEL_DOMAIN: a host name of one or more labels (`localhost`, `expose.example.com`). */
function parseTunnelDomain(raw: string, name: string): string {
  const value = raw.trim().toLowerCase().replace(/\.$/, '');
  if (value.length > HOST_NAME_MAX_LENGTH - 64 || !isDnsName(value.split('.'))) {
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

/** One of `choices`, case-insensitive. */
function oneOf<T extends string>(raw: string, name: string, choices: readonly T[]): T {
  const value = raw.trim().toLowerCase() as T;
  if (!choices.includes(value)) throw new ConfigError(`${name}: must be one of ${choices.join(', ')}, got "${raw}"`);
  return value;
}

/** An optional free-form value (a path, a token): unset or blank is undefined. Never echoed in errors. */
const optional = (raw: string | undefined) => (raw === undefined || raw.trim() === '' ? undefined : raw.trim());

/** An optional http(s) URL, without a trailing slash. */
function optionalUrl(raw: string | undefined, name: string): string | undefined {
  const value = optional(raw);
  if (value === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(`${name}: "${value}" is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ConfigError(`${name}: must start with http:// or https://`);
  if (url.username !== '' || url.password !== '') throw new ConfigError(`${name}: must not hold credentials (use the token or password setting)`);
  return value.replace(/\/+$/, '');
}

/** EXPOSE_API_HOST: a host name of two or more labels, normalised like the tunnel domain. */
function parseApiHost(raw: string | undefined, name: string): string | undefined {
  const value = optional(raw)?.toLowerCase().replace(/\.$/, '');
  if (value === undefined) return undefined;
  if (value.length > HOST_NAME_MAX_LENGTH || !isDnsName(value.split('.'), 2)) {
    throw new ConfigError(`${name}: "${raw}" is not a host name (e.g. api.example.com)`);
  }
  return value;
}

/** EXPOSE_ACME_DIRECTORY: `production`, `staging` (Let's Encrypt's) or any ACME directory URL. */
function parseAcmeDirectory(raw: string | undefined, name: string): string {
  const value = optional(raw) ?? 'production';
  const alias = ACME_DIRECTORIES[value.toLowerCase() as keyof typeof ACME_DIRECTORIES];
  if (alias !== undefined) return alias;
  const url = optionalUrl(value, name)!;
  if (!url.startsWith('https://')) throw new ConfigError(`${name}: an ACME directory is served over https, got "${value}"`);
  return url;
}

/** Every setting, in the order `--help` lists them. */
export const SETTINGS: readonly Setting<keyof Config>[] = [
  { key: 'host', env: 'EXPOSE_HOST', flag: '--host', defaultText: '0.0.0.0', help: 'listen address: an IPv4 or IPv6 address or a host name',
    parse: (raw, name) => parseHost(raw ?? '0.0.0.0', name) },
  { key: 'port', env: 'EXPOSE_PORT', envAlias: 'PORT', flag: '--port', defaultText: String(DEFAULT_PORT), help: 'listen port (0 picks a free one)',
    parse: (raw, name) => integer(raw ?? String(DEFAULT_PORT), name, 0, 65535) },
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
  { key: 'publicUrl', env: 'EXPOSE_PUBLIC_URL', flag: '--public-url', defaultText: 'http://{subdomain}.{domain}:{port}', help: 'how public_url is written, e.g. https://{subdomain}.expose.example.com behind a TLS proxy; with TLS on, https:// by default',
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
    parse: (raw, name) => oneOf(raw ?? 'info', name, LOG_LEVELS) },
  { key: 'tlsMode', env: 'EXPOSE_TLS', flag: '--tls', defaultText: 'off', help: 'off (plain HTTP on --port, as behind a TLS proxy), acme (own certificates) or files',
    parse: (raw, name) => oneOf(raw ?? 'off', name, TLS_MODES) },
  { key: 'httpsPort', env: 'EXPOSE_HTTPS_PORT', flag: '--https-port', defaultText: '443', help: 'with TLS on: the HTTPS port (--port is then unused)',
    parse: (raw, name) => integer(raw ?? '443', name, 0, 65535) },
  { key: 'httpPort', env: 'EXPOSE_HTTP_PORT', flag: '--http-port', defaultText: '80', help: 'with TLS on: plain HTTP, for ACME challenges and redirects to HTTPS',
    parse: (raw, name) => integer(raw ?? '80', name, 0, 65535) },
  { key: 'apiHost', env: 'EXPOSE_API_HOST', flag: '--api-host', defaultText: '(none)', help: "the API's host name, e.g. api.example.com (acme: its certificate, by HTTP-01)",
    parse: (raw, name) => parseApiHost(raw, name) },
  { key: 'tlsCertFile', env: 'EXPOSE_TLS_CERT_FILE', flag: '--tls-cert-file', defaultText: '(none)', help: 'files: PEM chain for the API host and *.{tunnel domain}; reloaded on SIGHUP or change',
    parse: (raw) => optional(raw) },
  { key: 'tlsKeyFile', env: 'EXPOSE_TLS_KEY_FILE', flag: '--tls-key-file', defaultText: '(none)', help: "files: the certificate's PEM private key",
    parse: (raw) => optional(raw) },
  { key: 'acmeEmail', env: 'EXPOSE_ACME_EMAIL', flag: '--acme-email', defaultText: '(none)', help: 'acme: contact address given to the CA',
    parse: (raw, name) => {
      const value = optional(raw);
      if (value !== undefined && !/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(value)) throw new ConfigError(`${name}: "${value}" is not an email address`);
      return value;
    } },
  { key: 'acmeDirectoryUrl', env: 'EXPOSE_ACME_DIRECTORY', flag: '--acme-directory', defaultText: 'production', help: "acme: production or staging (Let's Encrypt's), or any ACME directory URL",
    parse: (raw, name) => parseAcmeDirectory(raw, name) },
  { key: 'acmeCaFile', env: 'EXPOSE_ACME_CA_FILE', flag: '--acme-ca-file', defaultText: '(none)', help: "acme: PEM of a CA to trust for the directory's HTTPS (a private or test CA)",
    parse: (raw) => optional(raw) },
  { key: 'dnsProvider', env: 'EXPOSE_DNS_PROVIDER', flag: '--dns-provider', defaultText: 'none', help: 'acme: none, cloudflare, acme-dns or http: sets the DNS-01 records for *.{tunnel domain}',
    parse: (raw, name) => oneOf(raw ?? 'none', name, DNS_PROVIDERS) },
  { key: 'cloudflareApiToken', env: 'EXPOSE_CLOUDFLARE_API_TOKEN', flag: '--cloudflare-api-token', defaultText: '(none)', help: 'cloudflare: an API token with Zone:Read and DNS:Edit',
    parse: (raw) => optional(raw) },
  { key: 'cloudflareZoneId', env: 'EXPOSE_CLOUDFLARE_ZONE_ID', flag: '--cloudflare-zone-id', defaultText: '(looked up)', help: "cloudflare: the zone's id; looked up by name when unset",
    parse: (raw) => optional(raw) },
  { key: 'acmeDnsUrl', env: 'EXPOSE_ACMEDNS_URL', flag: '--acmedns-url', defaultText: '(none)', help: 'acme-dns: the server, e.g. https://auth.acme-dns.io',
    parse: (raw, name) => optionalUrl(raw, name) },
  { key: 'acmeDnsUsername', env: 'EXPOSE_ACMEDNS_USERNAME', flag: '--acmedns-username', defaultText: '(none)', help: "acme-dns: the registration's username",
    parse: (raw) => optional(raw) },
  { key: 'acmeDnsPassword', env: 'EXPOSE_ACMEDNS_PASSWORD', flag: '--acmedns-password', defaultText: '(none)', help: "acme-dns: the registration's password",
    parse: (raw) => optional(raw) },
  { key: 'acmeDnsSubdomain', env: 'EXPOSE_ACMEDNS_SUBDOMAIN', flag: '--acmedns-subdomain', defaultText: '(none)', help: "acme-dns: the registration's subdomain",
    parse: (raw) => optional(raw) },
  { key: 'dnsHttpUrl', env: 'EXPOSE_DNS_HTTP_URL', flag: '--dns-http-url', defaultText: '(none)', help: 'http: POST {url}/present and {url}/cleanup with JSON {"fqdn", "value"}',
    parse: (raw, name) => optionalUrl(raw, name) },
  { key: 'dnsHttpToken', env: 'EXPOSE_DNS_HTTP_TOKEN', flag: '--dns-http-token', defaultText: '(none)', help: 'http: sent as Authorization: Bearer',
    parse: (raw) => optional(raw) },
  { key: 'dnsPropagationSeconds', env: 'EXPOSE_DNS_PROPAGATION_SECONDS', flag: '--dns-propagation-seconds', defaultText: '(provider\'s)', help: 'seconds to wait after setting a DNS-01 record (cloudflare 10, others 0)',
    parse: (raw, name) => (optional(raw) === undefined ? undefined : integer(raw!, name, 0, 3600)) },
  { key: 'tlsOnDemandMax', env: 'EXPOSE_TLS_ON_DEMAND_MAX', flag: '--tls-on-demand-max', defaultText: '0', help: 'acme without a DNS provider: per-tunnel certificates held (HTTP-01); 0 = none',
    parse: (raw, name) => integer(raw ?? '0', name, 0, 100_000) },
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
  /** The name each setting was read under (flag, variable or alias), for messages. */
  const names = new Map<keyof Config, string>();
  for (const setting of SETTINGS) {
    const fromFlag = flags.get(setting.flag);
    const fromEnv = env[setting.env] ?? (setting.envAlias ? env[setting.envAlias] : undefined);
    const name = fromFlag !== undefined ? setting.flag : fromEnv === env[setting.env] ? setting.env : setting.envAlias!;
    config[setting.key] = setting.parse(fromFlag ?? fromEnv, name);
    names.set(setting.key, name);
  }
  checkTls(config as unknown as Config, (key) => names.get(key)!);
  return Object.freeze(config) as unknown as Config;
}

/**
 * The TLS settings that depend on each other: what each mode needs, and what the chosen DNS provider
 * needs. Settings of a mode not chosen are ignored (an operator may keep them in the environment).
 * @throws ConfigError naming the first setting that is missing or contradicts another.
 */
function checkTls(config: Config, nameOf: (key: keyof Config) => string): void {
  const need = (key: keyof Config, why: string) => {
    if (config[key] === undefined) throw new ConfigError(`${nameOf(key)}: required ${why}`);
  };
  if (config.tlsMode === 'off') return;
  if (config.httpsPort !== 0 && config.httpsPort === config.httpPort) {
    throw new ConfigError(`${nameOf('httpPort')}: must differ from ${nameOf('httpsPort')} (both are ${config.httpPort})`);
  }
  // The listener's own rule: every name under the tunnel domain is tunnel traffic and never the API.
  if (config.apiHost !== undefined && routeHost(config.apiHost, config.tunnelDomain).side === 'tunnel') {
    throw new ConfigError(`${nameOf('apiHost')}: ${config.apiHost} is a tunnel host (under ${config.tunnelDomain}); use e.g. ${config.tunnelDomain} itself or a name outside it`);
  }
  if (config.tlsMode === 'files') {
    need('tlsCertFile', 'when EXPOSE_TLS=files (the PEM certificate chain)');
    need('tlsKeyFile', 'when EXPOSE_TLS=files (the PEM private key)');
    return;
  }
  need('apiHost', "when EXPOSE_TLS=acme (the API's host name, e.g. api.example.com)");
  if (config.dnsProvider !== 'none' && config.tlsOnDemandMax > 0) {
    throw new ConfigError(`${nameOf('tlsOnDemandMax')}: on-demand certificates are for servers without a DNS provider (the wildcard from ${config.dnsProvider} covers every tunnel); set it to 0`);
  }
  const forProvider = `when EXPOSE_DNS_PROVIDER=${config.dnsProvider}`;
  if (config.dnsProvider === 'cloudflare') need('cloudflareApiToken', forProvider);
  if (config.dnsProvider === 'acme-dns') for (const key of ['acmeDnsUrl', 'acmeDnsUsername', 'acmeDnsPassword', 'acmeDnsSubdomain'] as const) need(key, forProvider);
  if (config.dnsProvider === 'http') need('dnsHttpUrl', forProvider);
}

/** The `--help` table: every setting with its flag, variable and default. */
export function settingsHelp(): string {
  return SETTINGS.map((s) => {
    const vars = s.envAlias ? `${s.env} (or ${s.envAlias})` : s.env;
    return `  ${`${s.flag} `.padEnd(24)}${`${vars} `.padEnd(36)}default ${s.defaultText}\n  ${''.padEnd(24)}${s.help}`;
  }).join('\n');
}
