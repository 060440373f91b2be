/**
 * Answers the server gives visitors of a tunnel host itself: JSON `{error, message}` when the visitor's
 * Accept names application/json, a small HTML page otherwise, always with `X-Expose-Error`. They never
 * echo the Host or the path: a visitor's input must not be reflected into a page on our domain.
 */

/** The visitor-facing error codes (exact) and their statuses. */
export const VISITOR_ERRORS = {
  tunnel_not_found: { status: 404, message: 'There is no tunnel at this address.' },
  tunnel_error: { status: 502, message: 'The tunnel could not reach its local service.' },
  tunnel_reconnecting: { status: 503, message: 'This tunnel is reconnecting; try again in a moment.' },
  tunnel_busy: { status: 503, message: 'This tunnel has too many requests in flight; try again shortly.' },
  tunnel_timeout: { status: 504, message: 'The local service did not answer in time.' },
  bad_request: { status: 400, message: 'This request cannot be relayed.' },
} as const;

/** One of the visitor error codes. */
export type VisitorErrorCode = keyof typeof VISITOR_ERRORS;

/** Retry-After (seconds) of the answers that have one. */
const RETRY_AFTER_SECONDS: Partial<Record<VisitorErrorCode, string>> = { tunnel_reconnecting: '2', tunnel_busy: '1' };

const page = (status: number, message: string) =>
  `<!doctype html><html><head><meta charset="utf-8"><title>${status}</title></head>` +
  `<body style="font-family:system-ui,sans-serif;max-width:36em;margin:4em auto"><h1>${status}</h1><p>${message}</p>` +
  `<p style="color:#777">Expose</p></body></html>`;

/** The answer for `code`, in the form the visitor asked for. */
export function visitorError(request: Request, code: VisitorErrorCode): Response {
  const { status, message } = VISITOR_ERRORS[code];
  const headers: Record<string, string> = { 'X-Expose-Error': code, 'Cache-Control': 'no-store' };
  const retryAfter = RETRY_AFTER_SECONDS[code];
  if (retryAfter !== undefined) headers['Retry-After'] = retryAfter;
  if ((request.headers.get('accept') ?? '').toLowerCase().includes('application/json')) {
    return Response.json({ error: code, message }, { status, headers });
  }
  headers['Content-Type'] = 'text/html; charset=utf-8';
  return new Response(page(status, message), { status, headers });
}
