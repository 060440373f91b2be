/**
 * Request bodies: refused over 64 KiB before anything reads them, read as raw text by a global parse
 * hook (so a malformed body cannot answer before the credential is checked), and decoded as JSON only
 * when the route's guard reaches the body step.
 */
import { Elysia } from 'elysia';
import { AppError } from './errors.ts';

/** The contract's body limit. */
export const MAX_BODY_BYTES = 64 * 1024;

/** What the parse hook leaves in `context.body` until the guard decodes it. */
export class RawBody {
  constructor(
    readonly text: string,
    readonly contentType: string,
  ) {}
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
 * Decodes a RawBody as a JSON object. Empty bodies stay undefined (the route's schema then says what
 * is required); non-JSON media types answer 415, broken JSON or anything but an object 400.
 */
export function decodeJsonBody(body: unknown): unknown {
  if (!(body instanceof RawBody)) return body;
  if (body.text.length === 0) return undefined;
  const mediaType = body.contentType.split(';', 1)[0]!.trim().toLowerCase();
  if (mediaType !== 'application/json') {
    throw new AppError(415, 'unsupported_media_type', 'Content-Type must be application/json');
  }
  let value: unknown;
  try {
    value = JSON.parse(body.text);
  } catch {
    throw new AppError(400, 'validation_error', 'Request body is not valid JSON');
  }
  // Every JSON route of the contract takes an object; say so plainly rather than "email is required".
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new AppError(400, 'validation_error', 'Request body must be a JSON object');
  }
  return value;
}

/** Global body handling: the size check on every request, and raw reading for every body. */
export function bodyPlugin() {
  return new Elysia({ name: 'http.body' })
    .onRequest(({ request }) => {
      const declared = request.headers.get('content-length');
      if (declared !== null && Number(declared) > MAX_BODY_BYTES) throw payloadTooLarge();
    })
    .onParse({ as: 'global' }, async ({ request, contentType }) => new RawBody(await readLimited(request), contentType ?? ''));
}
