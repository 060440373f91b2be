/**
 * The plain-HTTP listener when TLS is on: ACME HTTP-01 answers at `/.well-known/acme-challenge/`, and
 * every other request redirected to the same host and path over HTTPS. Nothing else is served in the
 * clear: no API, no tunnel, no credential ever crosses this port answered.
 */
import type { Server } from 'bun';
import { pathAndQuery } from '../lib/request-target.ts';
import { normaliseHost } from '../tunnel/host.ts';
import type { Http01Challenges } from './http-challenges.ts';

/** A host name or IPv4 literal as it may go into a Location header; anything else is not redirected. */
const REDIRECTABLE_HOST = /^[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?$/;

/** `https://{host}`, with `:{port}` unless it is HTTPS's own 443. */
export function httpsOrigin(host: string, port: number): string {
  return port === 443 ? `https://${host}` : `https://${host}:${port}`;
}

/**
 * Where `request` goes over HTTPS: `https://{host}{:httpsPort unless 443}{path and query}`; 301 for
 * GET and HEAD, 308 otherwise (so a POST stays a POST with its body). A request without a usable Host
 * goes to `fallbackHost` (the API host), or gets 400 when there is none.
 */
export function redirectToHttps(request: Request, httpsPort: number, fallbackHost: string | undefined): Response {
  const given = request.headers.get('host');
  const host = given === null ? fallbackHost : normaliseHost(given);
  if (host === undefined || !REDIRECTABLE_HOST.test(host)) {
    return new Response('Bad Request: this port redirects to HTTPS and needs a Host header naming this server\n', {
      status: 400,
      headers: { 'content-type': 'text/plain; charset=utf-8' },
    });
  }
  const status = request.method === 'GET' || request.method === 'HEAD' ? 301 : 308;
  return new Response(null, { status, headers: { location: `${httpsOrigin(host, httpsPort)}${pathAndQuery(request.url)}`, 'cache-control': 'no-store' } });
}

export interface HttpListenerOptions {
  hostname: string;
  port: number;
  /** The HTTP-01 answers (ACME mode); undefined with certificate files. */
  challenges: Http01Challenges | undefined;
  httpsPort: number;
  fallbackHost: string | undefined;
}

/**
 * Starts the plain-HTTP listener. Without `reusePort`: a second server on the same port fails here,
 * loudly, at start. @throws what Bun throws when it cannot listen.
 */
export function listenHttp(options: HttpListenerOptions): Server<undefined> {
  const { challenges, httpsPort, fallbackHost } = options;
  return Bun.serve({
    hostname: options.hostname,
    port: options.port,
    reusePort: false,
    development: false,
    fetch: (request) => challenges?.respond(request.url) ?? redirectToHttps(request, httpsPort, fallbackHost),
  });
}
