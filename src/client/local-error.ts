/** Short texts for local-service failures: what goes into StreamError and the request log. */

/** Longest error text we send; the protocol allows 2048, a log line wants far less. */
const MAX_ERROR_TEXT_CHARS = 200;

// Bun reports socket failures with Node-style codes (older releases used names like ConnectionRefused).
const TEXT_BY_CODE: Record<string, string> = {
  ECONNREFUSED: 'Connection refused',
  ConnectionRefused: 'Connection refused',
  ECONNRESET: 'Connection reset by the local service',
  ConnectionClosed: 'Connection closed by the local service',
  ENOTFOUND: 'Local host not found',
  EHOSTUNREACH: 'Local host unreachable',
  ETIMEDOUT: 'Connection to the local service timed out',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'Local TLS certificate not trusted',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'Local TLS certificate is self-signed',
  SELF_SIGNED_CERT_IN_CHAIN: 'Local TLS certificate is self-signed',
};

/**
 * One short line for why the local request failed: a fixed text for the usual socket errors
 * (`Connection refused` when nothing listens), else the error's own message on one line. It names
 * the local service only, never anything of the visitor's request.
 */
export function describeLocalError(error: unknown): string {
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
  if (typeof code === 'string' && Object.hasOwn(TEXT_BY_CODE, code)) return TEXT_BY_CODE[code]!;
  const message = error instanceof Error ? error.message : String(error);
  // One line of printable text: the message ends up in a log line and a visitor's 502 reason.
  // URLs go: one would carry the visitor's path and query (tokens, say) into the server's logs.
  const line = message.replace(/[\x00-\x1f\x7f]+/g, ' ').replace(/\b[a-z][a-z0-9+.-]*:\/\/\S*/gi, '<url>').trim();
  if (line === '') return 'Local request failed';
  return line.length > MAX_ERROR_TEXT_CHARS ? `${line.slice(0, MAX_ERROR_TEXT_CHARS - 1)}…` : line;
}
