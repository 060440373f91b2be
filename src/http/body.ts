/**
 * Request bodies: refused over 64 KiB before anything reads them, then read and decoded as JSON by a
 * global parse hook. A body that is not JSON does not answer from there: its error is kept in a
 * RejectedBody and answered by the route's guard at the body step, after the credential.
 */
import { Elysia } from 'elysia';
import { AppError } from './errors.ts';

/** The contract's body limit. */
export const MAX_BODY_BYTES = 64 * 1024;

/** What the parse hook leaves in `context.body` for a body it could not decode: the answer to give. */
export class RejectedBody {
  constructor(readonly error: AppError) {}
}

export const payloadTooLarge = () => new AppError(413, 'payload_too_large', `Request body must not exceed ${MAX_BODY_BYTES} bytes`);

/** Reads at most MAX_BODY_BYTES of a streamed body; a longer one is refused as it arrives. */
async function readLimited(request: Request): Promise<string> {
  if (!request.body) return '';
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of request.body as unknown as AsyncIterable<Uint8Array>) {
    total += chunk.byteLength;
    if (total > MAX_BODY_BYTES) throw payloadTooLarge();
    chunks.push(chunk);
  }
  return new TextDecoder('utf-8', { fatal: false }).decode(Buffer.concat(chunks));
}

/**
 * Decodes a body as a JSON object. An empty body is null (not undefined, which would send Elysia to
 * its own parsers; the route's schema then says the body is required); a non-JSON media type is
 * rejected with 415, broken JSON or anything but an object with 400.
 */
export function decodeJsonBody(text: string, contentType: string): object | null | RejectedBody {
  if (text.length === 0) return null;
  const mediaType = contentType.split(';', 1)[0]!.trim().toLowerCase();
  if (mediaType !== 'application/json') {
    return new RejectedBody(new AppError(415, 'unsupported_media_type', 'Content-Type must be application/json'));
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return new RejectedBody(new AppError(400, 'validation_error', 'Request body is not valid JSON'));
  }
  // Every JSON route of the contract takes an object; say so plainly rather than "email is required".
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return new RejectedBody(new AppError(400, 'validation_error', 'Request body must be a JSON object'));
  }
  return value;
}

/** Global body handling: the size check on every request, and reading and decoding every body. */
export function bodyPlugin() {
  return new Elysia({ name: 'http.body' })
    .onRequest(({ request }) => {
      const declared = request.headers.get('content-length');
      if (declared !== null && Number(declared) > MAX_BODY_BYTES) throw payloadTooLarge();
    })
    .onParse({ as: 'global' }, async ({ request, contentType }) => decodeJsonBody(await readLimited(request), contentType ?? ''));
}
