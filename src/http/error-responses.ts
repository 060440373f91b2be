/**
 * The error answers a route declares: the envelope's schema per status, naming the codes that route
 * really answers with at that status and showing one example of each, with the contract's exact
 * message where it fixes one. Elysia documents them from the route's `response` map; it never checks
 * an error answer against them (errors leave through the error handler or the guard, not the handler's
 * return value), so they describe the answers without changing any.
 */
import { t, type TSchema } from 'elysia';
import { answerObject, Integer } from './answer-schema.ts';
import { payloadTooLarge } from './body.ts';
import { type ErrorCode, MESSAGES } from './errors.ts';
import { PASSWORD_MIN_LENGTH_FLOOR } from '../lib/password.ts';

interface CodeDoc {
  status: number;
  /** When the code is answered, for the response's description. */
  when: string;
  /** What the answer says: exact where the contract fixes the message, a real one otherwise. */
  example: string;
}

/** Every code of the contract with its status: one table, so a route names codes and never a status. */
export const ERROR_CODES: Record<ErrorCode, CodeDoc> = {
  validation_error: { status: 400, when: 'the body is missing or not JSON, or a field is missing, of the wrong type or malformed', example: 'email is required' },
  weak_password: { status: 400, when: 'the password is too short or too long, too common, or (on a change) the current one', example: `password must be at least ${PASSWORD_MIN_LENGTH_FLOOR} characters` },
  invalid_password: { status: 400, when: 'current_password is wrong', example: MESSAGES.invalidPassword },
  unauthorized: { status: 401, when: 'no credential, or a malformed, expired, revoked or unknown one', example: MESSAGES.unauthorized },
  invalid_credentials: { status: 401, when: 'unknown email or wrong password (one answer for both)', example: MESSAGES.invalidCredentials },
  forbidden: { status: 403, when: 'a valid credential that may not do this (an API key where a session token is required; a disabled account)', example: MESSAGES.forbidden },
  registration_closed: { status: 403, when: 'registration is closed on this server', example: MESSAGES.registrationClosed },
  not_found: { status: 404, when: "no such key among the caller's (unknown, deleted, another account's, or a malformed id)", example: MESSAGES.apiKeyNotFound },
  email_taken: { status: 409, when: 'the email already has an account', example: MESSAGES.emailTaken },
  too_many_api_keys: { status: 409, when: 'the account holds its limit of live keys', example: MESSAGES.tooManyApiKeys },
  payload_too_large: { status: 413, when: 'the body is over 64 KiB', example: payloadTooLarge().message },
  unsupported_media_type: { status: 415, when: 'a body that is not application/json', example: 'Content-Type must be application/json' },
  rate_limited: { status: 429, when: 'a rate-limit bucket is empty, or the account is backing off failed logins; Retry-After says when to retry', example: MESSAGES.rateLimited },
  internal_error: { status: 500, when: 'anything unexpected (logged, answered without detail)', example: MESSAGES.internal },
  unavailable: { status: 503, when: 'the database does not answer', example: 'Database is not answering' },
};

/**
 * Headers an error answer carries, by status. The document adds them to every answer of that status
 * when it is built (openapi-document.ts), not to the schemas here, which would need the OpenAPI
 * generator's module at every start.
 */
export const ERROR_HEADERS: Partial<Record<number, Record<string, TSchema>>> = {
  401: { 'WWW-Authenticate': t.Literal('Bearer') },
  429: { 'Retry-After': Integer({ minimum: 1, description: 'Whole seconds until a request can succeed' }) },
};

const Message = t.String({ description: 'Human-readable text' });

/**
 * The schema of one status's answers, by its codes and their examples. Most routes document the same
 * 401, 403, 413 and 429, and building a schema is a few dozen µs of start-up: each is built once and
 * shared. The key is made of the contract's own codes and examples, so the table stays small.
 */
const statusSchemas = new Map<string, TSchema>();

function statusSchema(statusCodes: ErrorCode[], examples: Partial<Record<ErrorCode, string>>): TSchema {
  // The codes fix the status: they are the key, with their examples.
  const key = JSON.stringify(statusCodes.map((code) => [code, examples[code] ?? null]));
  let schema = statusSchemas.get(key);
  if (schema === undefined) {
    const error = statusCodes.length === 1 ? t.Literal(statusCodes[0]!) : t.Union(statusCodes.map((code) => t.Literal(code)));
    schema = answerObject(
      { error, message: Message },
      {
        title: 'Error',
        description: statusCodes.map((code) => `\`${code}\`: ${ERROR_CODES[code].when}.`).join(' '),
        examples: statusCodes.map((code) => ({ error: code, message: examples[code] ?? ERROR_CODES[code].example })),
      },
    );
    statusSchemas.set(key, schema);
  }
  return schema;
}

/**
 * Response schemas for the codes a route answers with, one per status, each the envelope
 * `{error, message}` and nothing else: `error` is the union of that status's codes, and each code has
 * an example. `examples` replaces an example message where this
 * route says something more telling (`name is required` rather than `email is required`).
 */
export function errorResponses(codes: ErrorCode[], examples: Partial<Record<ErrorCode, string>> = {}): Record<number, TSchema> {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of codes) {
    const status = ERROR_CODES[code].status;
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  const responses: Record<number, TSchema> = {};
  for (const [status, statusCodes] of byStatus) responses[status] = statusSchema(statusCodes, examples);
  return responses;
}
