/**
 * Which side of the one listener a request belongs to, from its `Host` alone: the API, or a tunnel
 * at `{subdomain}.{EXPOSE_TUNNEL_DOMAIN}`. `X-Forwarded-Host` is never read: a visitor could set it.
 */
import { isValidSubdomain } from './protocol.ts';

/** Where a request goes. A tunnel host whose label is not a valid subdomain has `subdomain: null`. */
export type HostRoute = { side: 'api' } | { side: 'tunnel'; subdomain: string | null };

const API: HostRoute = { side: 'api' };
const NO_TUNNEL: HostRoute = { side: 'tunnel', subdomain: null };

/**
 * The host as the spec compares it: lower-cased, without its port and without one trailing dot.
 * An IPv6 literal keeps its brackets (it can never be a tunnel host).
 */
export function normaliseHost(host: string): string {
  let name = host.trim().toLowerCase();
  if (name.startsWith('[')) {
    const end = name.indexOf(']');
    return end === -1 ? name : name.slice(0, end + 1);
  }
  const colon = name.indexOf(':');
  if (colon !== -1) name = name.slice(0, colon);
  return name.endsWith('.') ? name.slice(0, -1) : name;
}

/**
 * Routes by `Host`. Everything under the tunnel domain is tunnel traffic, even when it names no valid
 * tunnel (two labels, a bad label): those answer 404 there, and never reach the API. The domain itself
 * and every other host are the API. `tunnelDomain` must already be normalised.
 */
export function routeHost(host: string | null, tunnelDomain: string): HostRoute {
  if (host === null) return API;
  const name = normaliseHost(host);
  if (name.length <= tunnelDomain.length + 1 || !name.endsWith(tunnelDomain)) return API;
  if (name[name.length - tunnelDomain.length - 1] !== '.') return API;
  const label = name.slice(0, name.length - tunnelDomain.length - 1);
  return isValidSubdomain(label) ? { side: 'tunnel', subdomain: label } : NO_TUNNEL;
}

/**
 * Host values whose route is remembered. Every request of a keep-alive client, and of most clients,
 * sends the same few: parsing one again costs a visible share of a cheap API read. Emptied when full,
 * so a flood of made-up hosts cannot grow it.
 */
const HOST_MEMO_MAX_ENTRIES = 1024;

/** routeHost for one tunnel domain, remembering the route of each Host value it has seen. */
export class HostRouter {
  private readonly memo = new Map<string, HostRoute>();

  constructor(private readonly tunnelDomain: string) {}

  route(host: string | null): HostRoute {
    if (host === null) return API;
    let route = this.memo.get(host);
    if (route === undefined) {
      route = routeHost(host, this.tunnelDomain);
      if (this.memo.size >= HOST_MEMO_MAX_ENTRIES) this.memo.clear();
      this.memo.set(host, route);
    }
    return route;
  }
}
