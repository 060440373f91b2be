/**
 * Puts the libraries in production mode before any of them loads. Imported first by the entry point.
 *
 * Elysia decides once, when its module is evaluated, from NODE_ENV: outside production it builds a
 * pretty-printed report of every invalid value it sees (found value, expected value, every error),
 * CPU and memory an anonymous caller controls. A server's behaviour must not hang on the operator
 * remembering an environment variable, so the entry point sets it, whatever the environment says.
 * (The build's `define` does not reach this: Elysia reads `Bun.env`, not `process.env.NODE_ENV`.)
 */
process.env.NODE_ENV = 'production';
