/**
 * DNS-01 providers (RFC 8555 §8.4): each puts up the TXT record `_acme-challenge.{domain}` holding a
 * challenge's digest, and takes it down after. Three kinds: Cloudflare's API, acme-dns, and a generic
 * HTTP request to a URL the operator runs (lego's `httpreq` shape). No credential ever appears in an
 * error message or a log line.
 */

/** Puts up and takes down the TXT records of DNS-01 challenges. */
export interface DnsProvider {
  /** For logs: `cloudflare`, `acme-dns`, `http`. */
  readonly kind: string;
  /**
   * Milliseconds to wait after `present` before asking the CA to look: the time the record takes to
   * reach every authoritative server of the zone.
   */
  readonly propagationDelayMs: number;
  /**
   * Adds the TXT record `fqdn` (no trailing dot, e.g. `_acme-challenge.expose.example.com`) with
   * `value`, beside any other value there: a wildcard and its apex put up two values at the same name.
   */
  present(fqdn: string, value: string): Promise<void>;
  /** Removes that one value. */
  cleanup(fqdn: string, value: string): Promise<void>;
}

/** A provider's request failed: names the provider and the HTTP status or cause, never a credential. */
export class DnsProviderError extends Error {
  override name = 'DnsProviderError';
}

/** Bound on one API request of a provider. */
const REQUEST_TIMEOUT_MS = 30_000;

/** Sends one request; `what` names it in errors. */
async function request(what: string, url: string, init: RequestInit): Promise<Response> {
  try {
    return await fetch(url, { ...init, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS), redirect: 'error' });
  } catch (error) {
    throw new DnsProviderError(`${what}: ${(error as Error).message}`);
  }
}

/** Drops a trailing slash, so `base + '/path'` has exactly one. */
const trimSlash = (url: string) => url.replace(/\/+$/, '');

// ---------------------------------------------------------------------------------------------------
// Cloudflare

export interface CloudflareOptions {
  /** An API token with Zone:Read and DNS:Edit on the zone (never a global API key). */
  apiToken: string;
  /** The zone's id; when unset, looked up by name (the longest zone name that ends the record's name). */
  zoneId?: string;
  /** The API's base URL; for tests. Default `https://api.cloudflare.com/client/v4`. */
  baseUrl?: string;
  /** Default 10 s: Cloudflare's edge usually serves a new record within seconds. */
  propagationDelayMs?: number;
}

export const CLOUDFLARE_API_URL = 'https://api.cloudflare.com/client/v4';
const CLOUDFLARE_PROPAGATION_MS = 10_000;
/** TXT records of a challenge live this long (seconds): Cloudflare's minimum outside "automatic". */
const CLOUDFLARE_TXT_TTL_SECONDS = 120;

interface CloudflareEnvelope<T> {
  success: boolean;
  errors?: Array<{ code?: number; message?: string }>;
  result: T;
}

/** Cloudflare's DNS API with a bearer token: zone by name, create and delete TXT records. */
export function cloudflareDns(options: CloudflareOptions): DnsProvider {
  const base = trimSlash(options.baseUrl ?? CLOUDFLARE_API_URL);
  const headers = { authorization: `Bearer ${options.apiToken}`, 'content-type': 'application/json' };
  /** Zone id by record name, once found. */
  const zones = new Map<string, string>();
  /** Record ids this process created, by `fqdn value`; a restart falls back to a lookup. */
  const created = new Map<string, string>();

  const call = async <T>(what: string, path: string, init: RequestInit = {}): Promise<T> => {
    const response = await request(`cloudflare ${what}`, `${base}${path}`, { ...init, headers });
    const body = (await response.json().catch(() => undefined)) as CloudflareEnvelope<T> | undefined;
    if (!response.ok || body?.success !== true) {
      const reason = body?.errors?.map((e) => `${e.code ?? ''} ${e.message ?? ''}`.trim()).join('; ') || response.statusText;
      throw new DnsProviderError(`cloudflare ${what}: HTTP ${response.status} ${reason}`);
    }
    return body.result;
  };

  /** The zone holding `fqdn`: tries `a.b.c`, then `b.c` (never a bare TLD). */
  const zoneOf = async (fqdn: string): Promise<string> => {
    if (options.zoneId !== undefined) return options.zoneId;
    const known = zones.get(fqdn);
    if (known !== undefined) return known;
    const labels = fqdn.split('.');
    for (let i = 1; i <= labels.length - 2; i++) {
      const name = labels.slice(i).join('.');
      const found = await call<Array<{ id: string; name: string }>>('zone lookup', `/zones?name=${encodeURIComponent(name)}`);
      if (found.length > 0) {
        zones.set(fqdn, found[0]!.id);
        return found[0]!.id;
      }
    }
    throw new DnsProviderError(`cloudflare: no zone of this token holds ${fqdn}`);
  };

  return {
    kind: 'cloudflare',
    propagationDelayMs: options.propagationDelayMs ?? CLOUDFLARE_PROPAGATION_MS,
    async present(fqdn, value) {
      const zone = await zoneOf(fqdn);
      const record = await call<{ id: string }>('create TXT', `/zones/${zone}/dns_records`, {
        method: 'POST',
        body: JSON.stringify({ type: 'TXT', name: fqdn, content: value, ttl: CLOUDFLARE_TXT_TTL_SECONDS }),
      });
      created.set(`${fqdn} ${value}`, record.id);
    },
    async cleanup(fqdn, value) {
      const zone = await zoneOf(fqdn);
      let ids = [created.get(`${fqdn} ${value}`)].filter((id): id is string => id !== undefined);
      if (ids.length === 0) {
        const records = await call<Array<{ id: string; content: string }>>('list TXT', `/zones/${zone}/dns_records?type=TXT&name=${encodeURIComponent(fqdn)}`);
        // Cloudflare may hand TXT content back in quotes.
        ids = records.filter((r) => r.content.replace(/^"|"$/g, '') === value).map((r) => r.id);
      }
      for (const id of ids) await call('delete TXT', `/zones/${zone}/dns_records/${id}`, { method: 'DELETE' });
      created.delete(`${fqdn} ${value}`);
    },
  };
}

// ---------------------------------------------------------------------------------------------------
// acme-dns

export interface AcmeDnsOptions {
  /** The acme-dns server, e.g. `https://auth.acme-dns.io`. */
  baseUrl: string;
  /** The registration's `username`, `password` and `subdomain` (from its `/register`). */
  username: string;
  password: string;
  subdomain: string;
  /** Default 0: acme-dns is the authoritative server of the name it updates. */
  propagationDelayMs?: number;
}

/**
 * joohoi/acme-dns: `POST /update` with the registration's credentials. The operator has pointed
 * `_acme-challenge.{domain}` at `{subdomain}.{acme-dns zone}` by CNAME once, so `fqdn` is not sent.
 * acme-dns keeps the two newest values (a wildcard and its apex) and has nothing to delete: cleanup
 * does nothing, the next order overwrites.
 */
export function acmeDns(options: AcmeDnsOptions): DnsProvider {
  const url = `${trimSlash(options.baseUrl)}/update`;
  return {
    kind: 'acme-dns',
    propagationDelayMs: options.propagationDelayMs ?? 0,
    async present(_fqdn, value) {
      const response = await request('acme-dns update', url, {
        method: 'POST',
        headers: { 'x-api-user': options.username, 'x-api-key': options.password, 'content-type': 'application/json' },
        body: JSON.stringify({ subdomain: options.subdomain, txt: value }),
      });
      if (!response.ok) throw new DnsProviderError(`acme-dns update: HTTP ${response.status} ${(await response.text().catch(() => '')).slice(0, 200)}`);
    },
    async cleanup() {},
  };
}

// ---------------------------------------------------------------------------------------------------
// Generic HTTP request

export interface HttpRequestDnsOptions {
  /** Base URL: `POST {url}/present` and `POST {url}/cleanup`. */
  url: string;
  /** Sent as `Authorization: Bearer {token}` when set. */
  token?: string;
  /** Default 0: the endpoint answers once the record is up. */
  propagationDelayMs?: number;
}

/**
 * For any DNS the operator can script: `POST {url}/present` and `POST {url}/cleanup` with the JSON
 * `{"fqdn": "_acme-challenge.example.com.", "value": "..."}` (the fqdn with its trailing dot, as
 * lego's `httpreq` provider sends it, so adapters written for lego work). Any 2xx is success.
 */
export function httpRequestDns(options: HttpRequestDnsOptions): DnsProvider {
  const base = trimSlash(options.url);
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  const send = async (action: 'present' | 'cleanup', fqdn: string, value: string) => {
    const response = await request(`http dns ${action}`, `${base}/${action}`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ fqdn: fqdn.endsWith('.') ? fqdn : `${fqdn}.`, value }),
    });
    if (!response.ok) throw new DnsProviderError(`http dns ${action}: HTTP ${response.status}`);
  };
  return {
    kind: 'http',
    propagationDelayMs: options.propagationDelayMs ?? 0,
    present: (fqdn, value) => send('present', fqdn, value),
    cleanup: (fqdn, value) => send('cleanup', fqdn, value),
  };
}
