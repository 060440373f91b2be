/**
 * One error class and one envelope. Every non-2xx answer, from every route and from Elysia itself,
 * leaves as `{"error": code, "message": text}`; unexpected errors are logged with detail and answered
 * without any.
 */
import { Elysia, ValidationError } from 'elysia';
import type { Logger } from '../lib/logger.ts';
import { pathOf } from './request-log.ts';

/** The closed list of error codes of the contract. */
export type ErrorCode =
  | 'validation_error'
  | 'weak_password'
  | 'invalid_password'
  | 'unauthorized'
  | 'invalid_credentials'
  | 'forbidden'
  | 'registration_closed'
  | 'not_found'
  | 'email_taken'
  | 'too_many_api_keys'
  | 'payload_too_large'
  | 'unsupported_media_type'
  | 'rate_limited'
  | 'internal_error'
  | 'unavailable';

/**
 * An error that answers with its own status, code and message. It is an answer, not a bug: its stack
 * is never logged or shown, so none is captured (`stack` is undefined). Capturing one walks the whole
 * call stack, a real share of the cost of a 401 or a 429, which are the answers a flood receives.
 */
export class AppError extends Error {
  override name = 'AppError';
  /** The envelope's JSON text, made once: the guard answers the same few refusals over and over. */
  readonly body: string;
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
    /** Extra headers for the answer (WWW-Authenticate, Retry-After). */
    readonly headers: Record<string, string> = {},
  ) {
    const stackTraceLimit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(message);
    Error.stackTraceLimit = stackTraceLimit;
    this.body = envelope(code, message);
  }
}

export const MESSAGES = {
  unauthorized: 'Invalid or expired token',
  invalidCredentials: 'Invalid email or password',
  forbidden: "You don't have permission to access this resource",
  registrationClosed: 'Registration is closed on this server',
  apiKeyNotFound: 'API key not found',
  emailTaken: 'An account with this email already exists',
  tooManyApiKeys: 'API key limit reached',
  rateLimited: 'Too many requests, please try again later',
  invalidPassword: 'Current password is incorrect',
  internal: 'Internal server error',
} as const;

export const validationError = (message: string) => new AppError(400, 'validation_error', message);
export const weakPassword = (message: string) => new AppError(400, 'weak_password', message);
export const unauthorized = () => new AppError(401, 'unauthorized', MESSAGES.unauthorized, { 'WWW-Authenticate': 'Bearer' });
export const forbidden = () => new AppError(403, 'forbidden', MESSAGES.forbidden);
export const notFound = (message: string) => new AppError(404, 'not_found', message);

/** The Content-Type of every error envelope. */
export const JSON_CONTENT_TYPE = 'application/json; charset=utf-8';

/** The envelope's JSON text. */
function envelope(code: ErrorCode, message: string): string {
  return JSON.stringify({ error: code, message });
}

/** The envelope as a complete Response, for a route that answers an error itself. */
export function errorResponse(status: number, code: ErrorCode, message: string, headers: Record<string, string> = {}): Response {
  return new Response(envelope(code, message), {
    status,
    headers: { ...headers, 'Content-Type': JSON_CONTENT_TYPE },
  });
}

/**
 * Puts `error`'s status and headers into Elysia's `set` and returns the envelope's text: Elysia then
 * builds the answer with every header already in `set.headers` (security headers, RateLimit). The
 * error handler answers this way, and so does the guard without throwing at all.
 */
export function answerWith(set: { status?: unknown; headers: Record<string, unknown> }, error: AppError): string {
  set.status = error.status;
  Object.assign(set.headers, error.headers);
  set.headers['content-type'] = JSON_CONTENT_TYPE;
  return error.body;
}

/** "email: Expected string" from TypeBox's first complaint; never echoes the value itself. */
function describeValidation(error: ValidationError): string {
  if (error.type === 'body' && (error.value === undefined || error.value === null)) return 'Request body is required';
  const first = error.valueError;
  if (!first) return 'Request is invalid';
  const field = first.path.replace(/^\//, '').replaceAll('/', '.');
  if (field === '') return `${error.type} is invalid`;
  if (first.value === undefined) return `${field} is required`;
  return `${field}: ${first.message}`;
}

/**
 * The global error handler. Register it before any route: Elysia only applies hooks to routes
 * declared after them.
 *
 * It answers through `set` (status, headers) and returns the envelope's text, so Elysia builds the one
 * Response with every header already in `set.headers` (security headers, RateLimit).
 * Returning a Response of our own would make Elysia copy it into a second one to add those headers.
 */
export function errorsPlugin(logger: Logger, requestIdOf: (request: Request) => string | undefined) {
  return new Elysia({ name: 'http.errors' }).onError({ as: 'global' }, ({ error, code, set, request }) => {
    const answer = (status: number, errorCode: ErrorCode, message: string) => {
      set.status = status;
      set.headers['content-type'] = JSON_CONTENT_TYPE;
      return envelope(errorCode, message);
    };
    // Elysia wraps whatever a parse hook throws (our 413 for a streamed body over the limit) in a ParseError.
    if (code === 'PARSE' && (error as Error).cause instanceof AppError) error = (error as Error).cause as AppError;
    if (error instanceof AppError) return answerWith(set, error);
    // A request that fails its schema is the caller's fault; an answer that fails its own is ours: a 500
    // logged like any bug, never a validation_error naming one of our fields.
    if (error instanceof ValidationError && error.type !== 'response') return answer(400, 'validation_error', describeValidation(error));
    switch (code) {
      case 'NOT_FOUND':
        return answer(404, 'not_found', 'Not found');
      case 'PARSE':
        return answer(400, 'validation_error', 'Request body is not valid JSON');
    }
    logUnexpected(logger, request, requestIdOf(request), error);
    return answer(500, 'internal_error', MESSAGES.internal);
  });
}

/** The answer to an error that is not an AppError: a bug or a failure, whose detail stays in the log. */
export const INTERNAL_ERROR = new AppError(500, 'internal_error', MESSAGES.internal);

/** Logs an unexpected error with its detail (never sent to the caller). */
export function logUnexpected(logger: Logger, request: Request, requestId: string | undefined, error: unknown): void {
  const err = error as Error;
  logger.error('unhandled error', {
    request_id: requestId,
    method: request.method,
    path: pathOf(request.url),
    error: err?.name,
    detail: err?.message,
    stack: err?.stack,
  });
}
