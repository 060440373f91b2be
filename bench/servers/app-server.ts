/**
 * Benchmark child, set up as a production process: `production-mode.ts` is imported first, as
 * `src/index.ts` does, so Elysia (and Bun.serve) load in production mode whatever the environment says.
 * Settings come from the environment as in production. Prints one `READY {json}` line on stderr
 * (stdout carries the product's log) with the ports, and serves until killed. Two roles:
 *
 * - `BENCH_ROLE=baselines` (P1, P2, P4): the bare Elysia baselines only (hello, hello-headers,
 *   hello-logged, hello-429), and the ceilings: the contract's per-request duties in a raw Bun.serve
 *   on a port of their own (`rawPort`). None of the product is loaded but its logger and the access
 *   log's path function (hello-logged and the ceilings write the product's access line on stdout).
 *   The product itself runs as `src/index.ts serve` in a process of its own
 *   (bench/lib/bench-server.ts, startProductServer), so neither shares a heap, a garbage collector
 *   or an event loop with the other.
 * - default (P3 and the soak): the product through `listen` of src/server.ts (the one listener
 *   `serve` starts: Bun.serve dispatching by Host to the app's fetch), with the production logger on
 *   stdout, and the baselines plus `POST /login-baseline` on a second port of the same process,
 *   because P3 compares peak memory within one process. The READY line also carries the fixtures
 *   the load needs (an account, its JWT and an API key).
 *
 * The baseline routes live only here, never in the product.
 */
// First, before anything imports Elysia: see the module's comment.
import '../../src/production-mode.ts';
import { Elysia } from 'elysia';
import { JSON_CONTENT_TYPE, MESSAGES } from '../../src/http/errors.ts';
import { pathOf } from '../../src/http/request-log.ts';
import { SECURITY_HEADERS } from '../../src/http/security-headers.ts';
import { createLogger } from '../../src/lib/logger.ts';

/** What the parent reads from the READY line (the fixtures are empty in the `baselines` role). */
export interface BenchServerInfo {
  pid: number;
  appPort: number;
  helloPort: number;
  /** The ceilings' raw Bun.serve (baselines role only; 0 otherwise). */
  rawPort: number;
  email: string;
  password: string;
  token: string;
  apiKey: string;
}

export const READY_PREFIX = 'READY ';
/** The role that serves the baselines alone (bench/lib/bench-server.ts sets it). */
const BASELINES_ROLE = 'baselines';
const HOST = '127.0.0.1';
const EMAIL = 'bench@example.com';
const PASSWORD = 'bench-password-not-common-42';

// The body of the product's 429, from the product's own message, so the floor sends the same bytes.
const RATE_LIMITED_ENVELOPE = JSON.stringify({ error: 'rate_limited', message: MESSAGES.rateLimited });

/** The product's logger at its default level, on stdout (a pipe the bench drains, as for the product). */
const accessLog = createLogger('info');
const NANOSECONDS_PER_MS = 1e6;
/** As src/http/request-log.ts: the lines of this turn's answers, logged once the turn is over. */
let unwritten: Array<Record<string, unknown>> = [];
const writeLines = () => {
  const lines = unwritten;
  unwritten = [];
  for (const fields of lines) accessLog.info('request', fields);
};

/** Queues the access-log line of an answer, as src/http/request-log.ts does: the product's fields, written at the end of the turn. */
function logRequest(method: string, url: string, status: number, startNs: number, requestId: string, ip: string | undefined): void {
  unwritten.push({
    method,
    path: pathOf(url),
    status,
    duration_ms: Math.round(((Bun.nanoseconds() - startNs) / NANOSECONDS_PER_MS) * 100) / 100,
    request_id: requestId,
    ip,
  });
  if (unwritten.length === 1) setImmediate(writeLines);
}

/** The headers the product's 429 carries besides the security headers and the request id. */
const RATE_LIMITED_HEADERS = {
  'ratelimit-policy': '"general";q=1;w=60',
  ratelimit: '"general";r=0;t=42',
  'retry-after': '42',
  'content-type': JSON_CONTENT_TYPE,
};

/** hello, and the floors under the product's answers: what any answer of that shape costs on this stack. */
const baselines = () =>
  new Elysia()
    .get('/hello', () => ({ message: 'Hello, world' }))
    // The floor under any answer of the product: hello with the headers every product answer carries
    // (the security headers and a request id). What the product spends beyond this is its own work.
    .get('/hello-headers', ({ set }) => {
      Object.assign(set.headers, SECURITY_HEADERS);
      set.headers['x-request-id'] = crypto.randomUUID();
      return { message: 'Hello, world' };
    })
    // The floor under any answer with what the contract asks of every request besides its headers,
    // as the product does it: the Host read (one listener serves the API and the tunnels), the
    // client's address (server.requestIP, a getpeername per request) and one access-log line (the
    // product's logger and fields, written once per event-loop turn). No credential, bucket or read.
    .get('/hello-logged', ({ set, request, server }) => {
      const startNs = Bun.nanoseconds();
      request.headers.get('host');
      const ip = server?.requestIP(request)?.address;
      const requestId = crypto.randomUUID();
      Object.assign(set.headers, SECURITY_HEADERS);
      set.headers['x-request-id'] = requestId;
      logRequest(request.method, request.url, 200, startNs, requestId, ip);
      return { message: 'Hello, world' };
    })
    // The same floor for a 429: the headers the product's 429 carries (those above, RateLimit and
    // Retry-After) and its envelope, with no bucket, credential or log behind them.
    .get('/hello-429', ({ set }) => {
      Object.assign(set.headers, SECURITY_HEADERS);
      set.headers['x-request-id'] = crypto.randomUUID();
      Object.assign(set.headers, RATE_LIMITED_HEADERS);
      set.status = 429;
      return RATE_LIMITED_ENVELOPE;
    });

/** What the ceilings answer: hello's body with Response.json's type, and the product's 429 with its headers. */
const CEILING_HEADERS = new Headers({ ...SECURITY_HEADERS, 'content-type': 'application/json;charset=utf-8' });
const CEILING_429_HEADERS = new Headers({ ...SECURITY_HEADERS, ...RATE_LIMITED_HEADERS });
const HELLO_TEXT = JSON.stringify({ message: 'Hello, world' });

/**
 * The ceilings: the duties the contract asks of every request, and nothing else, in a raw `Bun.serve`
 * handler (no framework, no credential, no bucket, no read): the Host read (one listener serves the API
 * and the tunnels), the URL, the client address (server.requestIP), a request id, the security headers
 * and the id on the answer, and the access-log line through the product's logger, once per turn.
 * `/raw-logged` answers hello's body, `/raw-429` the product's 429. No answer doing what the contract
 * asks can cost less on this stack: their ratios to hello bound P1, P2 (`ceiling`) and P4 (`ceiling 429`).
 */
function serveCeilings() {
  return Bun.serve({
    hostname: HOST,
    port: 0,
    development: false,
    fetch(request, server) {
      const startNs = Bun.nanoseconds();
      request.headers.get('host');
      const url = request.url;
      const ip = server.requestIP(request)?.address;
      const requestId = crypto.randomUUID();
      const limited = url.endsWith('/raw-429');
      const headers = limited ? CEILING_429_HEADERS : CEILING_HEADERS;
      // One Headers object per shape, its id replaced per answer (new Response copies it), as the product's direct reads do.
      headers.set('x-request-id', requestId);
      const response = limited ? new Response(RATE_LIMITED_ENVELOPE, { status: 429, headers }) : new Response(HELLO_TEXT, { headers });
      logRequest(request.method, url, response.status, startNs, requestId, ip);
      return response;
    },
  });
}

let info: BenchServerInfo;
if (process.env.BENCH_ROLE === BASELINES_ROLE) {
  const hello = baselines().listen({ hostname: HOST, port: 0 });
  const ceilings = serveCeilings();
  info = { pid: process.pid, appPort: 0, helloPort: hello.server!.port!, rawPort: ceilings.port!, email: '', password: '', token: '', apiKey: '' };
} else {
  // Loaded here, not above, so the baselines role carries none of the product.
  const { Database } = await import('bun:sqlite');
  const { createServices } = await import('../../src/app.ts');
  const { openStore } = await import('../../src/cli/store.ts');
  const { loadConfig } = await import('../../src/config.ts');
  const { createLogger } = await import('../../src/lib/logger.ts');
  const { listen } = await import('../../src/server.ts');
  const { intervalsFromEnv } = await import('../../src/tunnel/settings.ts');

  // As `serve` (src/cli/serve.ts) does: open and migrate the store, the stdout logger at the configured
  // level, and the one listener on EXPOSE_HOST/EXPOSE_PORT (the parent sets 127.0.0.1 and 0).
  const config = loadConfig(process.env, []);
  const store = openStore(config, 'create');
  const logger = createLogger(config.logLevel);
  const running = listen({ config, db: store.handle, jwtSecret: store.jwtSecret, logger, tunnel: intervalsFromEnv(process.env) });
  // The fixtures, made through services on the same connection (the server's caches see the writes).
  const services = createServices({ config, db: store.handle, jwtSecret: store.jwtSecret, logger });
  const { user, token } = await services.auth.register(EMAIL, PASSWORD);
  const { key: apiKey } = services.apiKeys.create(user.id, 'bench key');

  // The login baseline: one bun:sqlite lookup and Bun.password.verify of the same stored hash (same
  // argon2id parameters), behind the same kind of Elysia JSON route, with nothing else.
  const raw = new Database(config.dbPath, { readonly: true });
  const findHash = raw.prepare<{ password_hash: string }, [string]>('SELECT password_hash FROM users WHERE email = ?');
  const hello = baselines()
    .post('/login-baseline', async ({ body, set }) => {
      const { email, password } = body as { email: string; password: string };
      const row = findHash.get(email);
      const ok = row !== null && (await Bun.password.verify(password, row.password_hash));
      set.status = ok ? 200 : 401;
      return { ok };
    })
    .listen({ hostname: HOST, port: 0 });
  info = { pid: process.pid, appPort: running.port, helloPort: hello.server!.port!, rawPort: 0, email: EMAIL, password: PASSWORD, token, apiKey };
}
process.stderr.write(`${READY_PREFIX}${JSON.stringify(info)}\n`);

// Exit normally on a signal so that `--cpu-prof` (used when profiling a missed goal) writes its profile.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(0));
