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
  return knownErrorText(error) ?? oneLine(error instanceof Error ? error.message : String(error), 'Local request failed');
}

/**
 * One short line for a local WebSocket that never opened, from its `error` event (undefined: it
 * closed without one). A non-101 answer is `WebSocket upgrade refused (404)`; socket errors get the
 * same texts as HTTP (`Connection refused`); never the URL, which carries the visitor's path and query.
 */
export function describeUpgradeFailure(event: Event | undefined): string {
  const { error, message } = (event ?? {}) as Partial<ErrorEvent>;
  const text = typeof message === 'string' ? message : '';
  const status = /Expected 101 status code: (\d{3})/.exec(text);
  if (status !== null) return `WebSocket upgrade refused (${status[1]})`;
  const known = knownErrorText(error);
  if (known !== undefined) return known;
  // Bun's text is "WebSocket connection to '<url>' failed: <why>": the why is enough.
  const why = oneLine(text.replace(/^WebSocket connection to '.*?' failed:?\s*/s, ''), '');
  return why === '' ? 'WebSocket upgrade failed' : `WebSocket upgrade failed: ${why}`;
}

function knownErrorText(error: unknown): string | undefined {
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
  return typeof code === 'string' && Object.hasOwn(TEXT_BY_CODE, code) ? TEXT_BY_CODE[code] : undefined;
}

function oneLine(message: string, fallback: string): string {
  // One line of printable text: the message ends up in a log line and a visitor's 502 reason.
  // URLs go: one would carry the visitor's path and query (tokens, say) into the server's logs.
  const line = message.replace(/[\x00-\x1f\x7f]+/g, ' ').replace(/\b[a-z][a-z0-9+.-]*:\/\/\S*/gi, '<url>').trim();
  if (line === '') return fallback;
  return line.length > MAX_ERROR_TEXT_CHARS ? `${line.slice(0, MAX_ERROR_TEXT_CHARS - 1)}…` : line;
}
