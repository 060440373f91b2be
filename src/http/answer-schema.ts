/**
 * How the schema of an answer is written, for every route (each module's model.ts) and for the error
 * envelopes (error-responses.ts) alike.
 */
import { type ObjectOptions, type TObject, type TProperties, Type } from '@sinclair/typebox';
import { t } from 'elysia';

/**
 * An answer's object: exactly these fields (`additionalProperties: false`). That is what is sent, since
 * Elysia cleans out any field the schema does not name, and saying so matters: Elysia otherwise writes
 * it into the schema, in place, the first time it checks an answer, and these schemas are shared
 * between routes and apps, so /docs/json changed with the traffic before it (test/http/openapi.test.ts).
 */
export function answerObject<T extends TProperties>(properties: T, options: ObjectOptions = {}): TObject<T> {
  return t.Object(properties, { ...options, additionalProperties: false });
}

/**
 * A JSON integer. Not Elysia's `t.Integer`: that one is for query strings and path parameters (it also
 * takes a numeric string, so the document said "a string or an integer"), and it compiles a checker
 * each time it is called, a millisecond of start-up for a few fields.
 */
export const Integer = Type.Integer;
