/** Route: GET /health: 200 once the database answers, 503 otherwise. Exempt from rate limits. */
import type { Database } from 'bun:sqlite';
import { Elysia, t } from 'elysia';
import { errorResponse, errorResponses } from '../../http/errors.ts';

/** The health route, which asks the database a trivial question. */
export function healthRoutes(sqlite: Database) {
  return new Elysia({ name: 'modules.health' }).get(
    '/health',
    () => {
      try {
        // Prepared per call on purpose: a statement kept from start-up still answers on a closed handle.
        sqlite.prepare('SELECT 1').get();
        return { status: 'ok' as const };
      } catch {
        return errorResponse(503, 'unavailable', 'Database is not answering');
      }
    },
    {
      response: { 200: t.Object({ status: t.Literal('ok') }), ...errorResponses(503) },
      detail: { summary: 'Liveness and database check', tags: ['health'] },
    },
  );
}
