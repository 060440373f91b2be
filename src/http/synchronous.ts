/**
 * Hooks and handlers that Elysia calls without awaiting. Elysia guesses whether a function is
 * asynchronous from its source text (an `async`, an `await`, or a `return f(` / `=> f(` anywhere in
 * it) and awaits every one it guesses is, which makes the route's whole handler answer through a
 * promise: a microtask and an allocation per request, measured at several µs of a cheap read. Bun's
 * transpiler and minifier rewrite source (`const x = f(); return x` becomes `return f()`), so the
 * guess cannot be steered by how the code is written. A bound function shows no source: Elysia then
 * always guesses "synchronous".
 *
 * Only for functions that never return a promise, and that read from Elysia's context no more than
 * it always provides (request, set, params, and what earlier hooks resolved): with no source to read,
 * Elysia prepares nothing else (no query, headers or cookie parsing). test/http/hot-path.test.ts
 * checks that the guarded reads answer without a promise.
 */
// `any`: the context type comes from where the function is used (a route, a macro hook).
export function synchronous<F extends (context: any) => unknown>(fn: F): F {
  return fn.bind(undefined) as F;
}
