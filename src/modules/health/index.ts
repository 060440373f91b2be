/** Route: GET /health: 200 once the database answers, 503 otherwise. Exempt from rate limits. */
import type { Database } from 'bun:sqlite';
import { Elysia, t, type TSchema } from 'elysia';
import { answerObject } from '../../http/answer-schema.ts';
import type { DirectReads } from '../../http/direct-reads.ts';
import { errorResponses } from '../../http/error-responses.ts';
import { AppError } from '../../http/errors.ts';

const Healthy = answerObject({ status: t.Literal('ok') }, { examples: [{ status: 'ok' }] });
// 413: the body limit applies to every request, this one included.
const Refusals = errorResponses(['payload_too_large', 'unavailable']);

/** An OpenAPI answer with a JSON body of `schema`, described by the schema's own description. */
const jsonAnswer = (schema: TSchema, description = schema.description!) => ({ description, content: { 'application/json': { schema } } });

const HEALTHY = Object.freeze({ status: 'ok' as const });
const UNAVAILABLE = new AppError(503, 'unavailable', 'Database is not answering');

/**
 * The health route, which asks the database a trivial question. GET is also served by `direct`, in
 * front of Elysia: what orchestrators poll, and wait for after a start, is answered without
 * composing Elysia's handler (the first API request does that).
 */
export function healthRoutes(sqlite: Database, direct: DirectReads) {
  const check = () => {
    try {
      // Prepared per call on purpose: a statement kept from start-up still answers on a closed handle.
      sqlite.prepare('SELECT 1').get();
    } catch {
      throw UNAVAILABLE;
    }
    return HEALTHY;
  };
  direct.addPublic('/health', check);
  return new Elysia({ name: 'modules.health' }).get(
    '/health',
    check,
    {
      detail: {
        summary: 'Liveness and database check',
        tags: ['health'],
        security: [],
        // Documented for OpenAPI only, not declared as `response` schemas: Elysia would compile their
        // validators on the first request to /health, ~10 ms of the time from start to the first
        // healthy answer (what orchestrators wait for), to check two answers fixed in the code above.
        responses: {
          200: jsonAnswer(Healthy, 'The server and its database answer'),
          413: jsonAnswer(Refusals[413]!),
          503: jsonAnswer(Refusals[503]!),
        },
      },
    },
  );
}
