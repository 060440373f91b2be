/**
 * Headers that make every answer safer to render in a browser. The content security policy also
 * enforces, in the browser, what the docs page promises: nothing loads from any other host.
 */
import { Elysia } from 'elysia';

/** Sent on every answer. */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  // Swagger UI starts from one inline script and sets inline styles; everything else must be ours.
  'content-security-policy':
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
};

/**
 * Adds SECURITY_HEADERS to every answer, error answers included. As Elysia's default headers, which it
 * copies into each request's `set.headers` as it creates the context: no hook to call per request.
 */
export function securityHeadersPlugin() {
  return new Elysia({ name: 'http.security-headers' }).headers(SECURITY_HEADERS);
}
