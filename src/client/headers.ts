/** Header rules of the relay, client side: what goes to the local service and what goes back to the visitor. */
import { connectionOptions, type HeaderPair, isHopByHopHeader } from '../tunnel/protocol.ts';

/** How the local request's `Host` is chosen: the local target's (default) or the visitor's. */
export type HostHeaderMode = 'rewrite' | 'preserve';

/**
 * The headers of the local request, from the visitor's (StreamOpen `headers`). Hop-by-hop headers
 * are dropped again (the server already did; this side does not rely on it). `Host` becomes
 * `targetHost` unless preserved: dev servers such as Vite refuse a Host they do not know.
 * `Expect` is dropped: the server has already taken the body, so a `100 Continue` from the local
 * service would have no one to go to. Repeated `Cookie` headers are joined with "; ", the cookie
 * separator, not with the ", " Headers would use.
 */
export function localRequestHeaders(pairs: readonly HeaderPair[], targetHost: string, mode: HostHeaderMode): Headers {
  const headers = new Headers();
  const cookies: string[] = [];
  let visitorHost: string | undefined;
  const listed = connectionOptions(pairs.filter(([name]) => name.toLowerCase() === 'connection').map(([, value]) => value));
  for (const [name, value] of pairs) {
    const lower = name.toLowerCase();
    if (isHopByHopHeader(lower) || listed.has(lower) || lower === 'expect') continue;
    if (lower === 'host') visitorHost ??= value;
    else if (lower === 'cookie') cookies.push(value);
    else headers.append(name, value);
  }
  if (cookies.length > 0) headers.set('cookie', cookies.join('; '));
  headers.set('host', mode === 'preserve' && visitorHost !== undefined ? visitorHost : targetHost);
  return headers;
}

/**
 * The local response's headers as StreamResponse pairs: hop-by-hop dropped, each `Set-Cookie` its
 * own pair (joining them would break cookies whose `Expires` holds a comma). Other repeated
 * headers arrive already joined with ", " by fetch's Headers, which HTTP allows for them.
 */
export function responseHeaderPairs(headers: Headers): HeaderPair[] {
  const pairs: HeaderPair[] = [];
  const listed = connectionOptions([headers.get('connection') ?? '']);
  for (const [name, value] of headers) {
    if (name === 'set-cookie' || isHopByHopHeader(name) || listed.has(name)) continue;
    pairs.push([name, value]);
  }
  for (const cookie of headers.getSetCookie()) pairs.push(['set-cookie', cookie]);
  return pairs;
}
