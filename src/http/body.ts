/**
 * Request bodies: refused over 64 KiB before anything reads them, read as raw bytes by the parse hook
 * of the routes that take one (so a malformed body cannot answer before the credential is checked),
 * and decoded as JSON only when the route's guard reaches the body step: strict UTF-8, bounded
 * nesting, then JSON.parse. Routes that take no body never read one (Bun discards it).
 */
import { Elysia } from 'elysia';
import { AppError } from './errors.ts';

/** The contract's body limit. */
export const MAX_BODY_BYTES = 64 * 1024;

/**
 * Deepest nesting of arrays and objects a JSON body may have. Every body of the contract is a flat
 * object (depth 1); the bound is there because the cost of what happens to a value after parsing
 * (schema validation, its error reports, stack-bound recursion) grows with depth, quadratically in
 * places: a 60 KB body nested 10,000 deep cost a second of CPU, 5,000-deep arrays a stack overflow.
 */
export const MAX_JSON_DEPTH = 32;

/** What the parse hook leaves in `context.body` until the guard decodes it. */
export class RawBody {
  constructor(
    readonly bytes: Uint8Array,
    readonly contentType: string,
  ) {}
}

export const payloadTooLarge = () => new AppError(413, 'payload_too_large', `Request body must not exceed ${MAX_BODY_BYTES} bytes`);

const NO_BYTES = new Uint8Array(0);
/** Refuses malformed input instead of replacing it with U+FFFD: two different passwords must never decode alike. */
const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true });

/** Reads at most MAX_BODY_BYTES of a streamed body; a longer one is refused as it arrives. */
async function readLimited(request: Request): Promise<Uint8Array> {
  if (!request.body) return NO_BYTES;
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of request.body as unknown as AsyncIterable<Uint8Array>) {
    total += chunk.byteLength;
    if (total > MAX_BODY_BYTES) throw payloadTooLarge();
    chunks.push(chunk);
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
}

const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * Whether the JSON text nests arrays and objects deeper than `maxDepth`, in one linear pass that
 * stops at the first level too deep. Brackets inside strings do not count. Malformed text is left to
 * JSON.parse: this only has to be right for text that parses.
 */
export function exceedsJsonDepth(text: string, maxDepth: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) {
      inString = true;
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (++depth > maxDepth) return true;
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      depth--;
    }
  }
  return false;
}

/**
 * Decodes a RawBody as a JSON object. Empty bodies stay undefined (the route's schema then says what
 * is required); non-JSON media types answer 415, broken JSON or anything but an object 400.
 */
export function decodeJsonBody(body: unknown): unknown {
  if (!(body instanceof RawBody)) return body;
  if (body.bytes.byteLength === 0) return undefined;
  const mediaType = body.contentType.split(';', 1)[0]!.trim().toLowerCase();
  if (mediaType !== 'application/json') {
    throw new AppError(415, 'unsupported_media_type', 'Content-Type must be application/json');
  }
  let text: string;
  try {
    text = STRICT_UTF8.decode(body.bytes);
  } catch {
    throw new AppError(400, 'validation_error', 'Request body is not valid UTF-8');
  }
  if (exceedsJsonDepth(text, MAX_JSON_DEPTH)) {
    throw new AppError(400, 'validation_error', `Request body nests arrays or objects deeper than ${MAX_JSON_DEPTH} levels`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new AppError(400, 'validation_error', 'Request body is not valid JSON');
  }
  // Every JSON route of the contract takes an object; say so plainly rather than "email is required".
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new AppError(400, 'validation_error', 'Request body must be a JSON object');
  }
  return value;
}

/**
 * The parse hook of every route whose method may carry a body (the guard's `access.body`): the raw
 * bytes, at most MAX_BODY_BYTES of them. GET routes have none: a parse hook makes Elysia's handler of
 * a route asynchronous, and they answer without awaiting anything.
 */
export const readRawBody = async ({ request, contentType }: { request: Request; contentType?: string }) => new RawBody(await readLimited(request), contentType ?? '');

/** The size check on every request: a declared length over the limit is refused before anything else. */
export function bodyPlugin() {
  return new Elysia({ name: 'http.body' }).onRequest(({ request }) => {
    const declared = request.headers.get('content-length');
    if (declared !== null && Number(declared) > MAX_BODY_BYTES) throw payloadTooLarge();
  });
}
