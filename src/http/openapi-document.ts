/**
 * The OpenAPI document: Elysia's generator over every route, then the two things it cannot see put
 * back from the routes' own `detail`.
 *
 * - Request bodies. The app's global parse hook is a function (it keeps bodies raw until the guard has
 *   checked the credential), and the generator writes `content: {}` for a body read by a function
 *   parser: no body editor in Swagger UI, `never` for a generated client. A route documents its body
 *   with `detail.requestBody` (see `jsonRequestBody`); one that does not gets its body schema as
 *   `application/json`, which is what every body of the contract is.
 * - Answers without a schema (204). The generator rebuilds `responses` from the route's `response`
 *   map and drops `detail.responses`; they are merged back.
 * - The headers of error answers (WWW-Authenticate on a 401, Retry-After on a 429: ERROR_HEADERS).
 *
 * The generator is imported when the document is first built: it is a module most servers never need,
 * and evaluating it cost every start ~0.4 ms. This module itself stays light, as every route's schema
 * module imports it; its request bodies keep their TypeBox schemas until the document is built.
 */
import type { AnyElysia, InternalRoute } from 'elysia';
import type { TObject, TSchema } from '@sinclair/typebox';
import type { ElysiaOpenAPIConfig } from '@elysiajs/openapi';
import type { OpenAPIV3 } from 'openapi-types';
import { ERROR_HEADERS } from './error-responses.ts';

/** The generator's module, loaded by the first document. */
type Generator = typeof import('@elysiajs/openapi/openapi');

/** The OpenAPI version written; 3.1 so that `null` and `examples` are plain JSON Schema. */
export const OPENAPI_VERSION = '3.1.2';

/** Length rules a service applies to a body's string fields, documented but not validated by the schema. */
export type FieldLengths<T extends TObject> = Partial<Record<keyof T['properties'] & string, { minLength?: number; maxLength?: number }>>;

/**
 * A JSON request body as the document shows it: the route's own body schema (fields, required, its
 * `examples`), plus `lengths`. Those stay out of the validated schema on purpose: the services apply
 * them after trimming and answer with the contract's codes (`weak_password` for a long password),
 * which a schema check would pre-empt with `validation_error`. The schema is still TypeBox's here;
 * the document makes it plain JSON Schema when it is built (`plainBody`).
 */
export function jsonRequestBody<T extends TObject>(schema: T, lengths: FieldLengths<T> = {}): OpenAPIV3.RequestBodyObject {
  const properties: Record<string, TSchema> = {};
  for (const [name, field] of Object.entries(schema.properties as Record<string, TSchema>)) properties[name] = { ...field, ...lengths[name] };
  // Swagger UI fills "Try it out" from the media type's example; the schema's first one is it.
  const example = (schema.examples as unknown[] | undefined)?.[0];
  return {
    required: true,
    content: { 'application/json': { schema: { ...schema, properties } as OpenAPIV3.SchemaObject, ...(example === undefined ? {} : { example }) } },
  };
}

/** A documented answer with no body (204): the generator cannot draw one from a schema. */
export function noContent(description: string): OpenAPIV3.ResponsesObject {
  return { 204: { description } };
}

/** The parts of the document that are not drawn from the routes. */
export interface DocumentBase {
  info: OpenAPIV3.InfoObject;
  servers: OpenAPIV3.ServerObject[];
  tags: OpenAPIV3.TagObject[];
  securitySchemes: Record<string, OpenAPIV3.SecuritySchemeObject>;
}

type Operation = OpenAPIV3.OperationObject;

/**
 * Every route of the application `plugin` belongs to. `getGlobalRoutes` is how Elysia's generator sees
 * the whole application from inside a plugin; Elysia's types mark it protected.
 */
export function applicationRoutes(plugin: AnyElysia): InternalRoute[] {
  return (plugin as unknown as { getGlobalRoutes(): InternalRoute[] }).getGlobalRoutes();
}

/** The document for every route of the application `plugin` belongs to. */
export async function openApiDocument(plugin: AnyElysia, base: DocumentBase, exclude: ElysiaOpenAPIConfig['exclude']) {
  const generator: Generator = await import('@elysiajs/openapi/openapi');
  const { paths, components } = generator.toOpenAPISchema(plugin, exclude, undefined, undefined, OPENAPI_VERSION);
  for (const route of applicationRoutes(plugin)) {
    const operation = (paths[route.path.replace(/:([^/]+)/g, '{$1}')] as Record<string, Operation> | undefined)?.[route.method.toLowerCase()];
    if (operation) completeOperation(operation, route.hooks, generator);
  }
  return {
    openapi: OPENAPI_VERSION,
    info: base.info,
    servers: base.servers,
    tags: base.tags,
    paths,
    components: { schemas: components.schemas, securitySchemes: base.securitySchemes },
  };
}

function completeOperation(operation: Operation, hooks: { body?: unknown; detail?: Partial<Operation> }, generator: Generator): void {
  const detail = hooks.detail ?? {};
  const body = (detail.requestBody as OpenAPIV3.RequestBodyObject | undefined) ?? (hooks.body && operation.requestBody ? jsonRequestBody(hooks.body as TObject) : undefined);
  if (body) operation.requestBody = plainBody(body, generator);
  if (detail.responses) {
    // In status order, as the generator writes them: 2xx first.
    const responses = { ...operation.responses, ...detail.responses };
    operation.responses = Object.fromEntries(Object.entries(responses).sort(([a], [b]) => a.localeCompare(b)));
  }
  const responses = operation.responses ?? {};
  for (const [status, response] of Object.entries(responses)) {
    const headers = ERROR_HEADERS[Number(status)];
    if (headers) responses[status] = withHeaders(response as OpenAPIV3.ResponseObject, headers, generator);
    nameExamples(responses[status] as OpenAPIV3.ResponseObject);
  }
}

/** A copy of `body` (jsonRequestBody's, which routes share) with its schema as plain JSON Schema. */
function plainBody(body: OpenAPIV3.RequestBodyObject, generator: Generator): OpenAPIV3.RequestBodyObject {
  const media = body.content['application/json']!;
  const schema = generator.unwrapSchema(media.schema as TSchema, undefined, 'input', OPENAPI_VERSION) as OpenAPIV3.SchemaObject;
  return { ...body, content: { 'application/json': { ...media, schema } } };
}

/** `response` with `headers` documented, where and as the generator puts a schema's own headers. */
function withHeaders(response: OpenAPIV3.ResponseObject, headers: Record<string, TSchema>, generator: Generator): OpenAPIV3.ResponseObject {
  const documented = Object.fromEntries(
    Object.entries(headers).map(([name, schema]) => [name, { schema: generator.unwrapSchema(schema, undefined, 'output', OPENAPI_VERSION) as OpenAPIV3.SchemaObject }]),
  );
  const { description, ...rest } = response;
  return { description, headers: documented, ...rest };
}

/**
 * Swagger UI shows only the first of a schema's `examples`; one status often has several codes (400:
 * validation_error or weak_password). Named media-type examples, drawn from the same list, give each
 * its own entry in the UI's example picker.
 */
function nameExamples(response: OpenAPIV3.ResponseObject): void {
  const media = response.content?.['application/json'];
  const examples = (media?.schema as { examples?: unknown[] } | undefined)?.examples;
  if (!media || media.examples || !Array.isArray(examples) || examples.length < 2) return;
  media.examples = Object.fromEntries(
    examples.map((value, i) => {
      const code = (value as { error?: unknown }).error;
      return [typeof code === 'string' ? code : `example_${i + 1}`, { value }];
    }),
  );
}
