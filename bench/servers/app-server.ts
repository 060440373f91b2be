/**
 * Benchmark child: the real app (createApp, production password cost, a file database) on one port and
 * the baselines on another, in the same process and runtime, so a ratio compares like with like.
 * Settings come from the environment as in production. Prints one `READY {json}` line on stderr (stdout
 * carries the access log) with the ports and the fixtures the load needs (an account, its JWT and an
 * API key), then serves until killed.
 * The baseline routes live only here, never in the product.
 */
import { Database } from 'bun:sqlite';
import { Elysia } from 'elysia';
import { createApp, createServices, type AppDeps } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import { openDb } from '../../src/db/client.ts';
import { migrate } from '../../src/db/migrate.ts';
import { resolveJwtSecret } from '../../src/db/settings.ts';
import { MESSAGES } from '../../src/http/errors.ts';
import { SECURITY_HEADERS } from '../../src/http/security-headers.ts';
import { createLogger } from '../../src/lib/logger.ts';

/** What the parent reads from the READY line. */
export interface BenchServerInfo {
  pid: number;
  appPort: number;
  helloPort: number;
  email: string;
  password: string;
  token: string;
  apiKey: string;
}

export const READY_PREFIX = 'READY ';
const HOST = '127.0.0.1';
const EMAIL = 'bench@example.com';
const PASSWORD = 'bench-password-not-common-42';

const config = loadConfig(process.env, []);
const handle = openDb(config.dbPath);
migrate(handle.db);
const deps: AppDeps = {
  config,
  db: handle,
  jwtSecret: resolveJwtSecret(handle.db, config.jwtSecret),
  logger: createLogger(config.logLevel),
};
const services = createServices(deps);
const app = createApp(deps, services).listen({ hostname: HOST, port: 0 });

const { user, token } = await services.auth.register(EMAIL, PASSWORD);
const { key: apiKey } = services.apiKeys.create(user.id, 'bench key');

// The login baseline: one bun:sqlite lookup and Bun.password.verify of the same stored hash (same
// argon2id parameters), behind the same kind of Elysia JSON route, with nothing else.
const raw = new Database(config.dbPath, { readonly: true });
const findHash = raw.prepare<{ password_hash: string }, [string]>('SELECT password_hash FROM users WHERE email = ?');

// The body of the product's 429, from the product's own message, so the floor sends the same bytes.
const RATE_LIMITED_ENVELOPE = JSON.stringify({ error: 'rate_limited', message: MESSAGES.rateLimited });

const hello = new Elysia()
  .get('/hello', () => ({ message: 'Hello, world' }))
  // The floor under any answer of the product: hello with the headers every product answer carries
  // (the security headers and a request id). What the product spends beyond this is its own work.
  .get('/hello-headers', ({ set }) => {
    Object.assign(set.headers, SECURITY_HEADERS);
    set.headers['x-request-id'] = crypto.randomUUID();
    return { message: 'Hello, world' };
  })
  // The same floor for a 429: the headers the product's 429 carries (those above, RateLimit and
  // Retry-After) and its envelope, with no bucket, credential or log behind them.
  .get('/hello-429', ({ set }) => {
    Object.assign(set.headers, SECURITY_HEADERS);
    set.headers['x-request-id'] = crypto.randomUUID();
    set.headers['ratelimit-policy'] = '"general";q=1;w=60';
    set.headers['ratelimit'] = '"general";r=0;t=42';
    set.headers['retry-after'] = '42';
    set.headers['content-type'] = 'application/json; charset=utf-8';
    set.status = 429;
    return RATE_LIMITED_ENVELOPE;
  })
  .post('/login-baseline', async ({ body, set }) => {
    const { email, password } = body as { email: string; password: string };
    const row = findHash.get(email);
    const ok = row !== null && (await Bun.password.verify(password, row.password_hash));
    set.status = ok ? 200 : 401;
    return { ok };
  })
  .listen({ hostname: HOST, port: 0 });

const info: BenchServerInfo = {
  pid: process.pid,
  appPort: app.server!.port!,
  helloPort: hello.server!.port!,
  email: EMAIL,
  password: PASSWORD,
  token,
  apiKey,
};
process.stderr.write(`${READY_PREFIX}${JSON.stringify(info)}\n`);

// Exit normally on a signal so that `--cpu-prof` (used when profiling a missed goal) writes its profile.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(0));
