/** Builds a fresh app on a private in-memory database for one test, with a manual clock and cheap hashing. */
import { createApp, createServices, type AppDeps } from '../../src/app.ts';
import { loadConfig, type Config } from '../../src/config.ts';
import { openDb, type DbHandle } from '../../src/db/client.ts';
import { migrate } from '../../src/db/migrate.ts';
import { ManualClock } from '../../src/lib/clock.ts';
import { createMemoryLogger } from '../../src/lib/logger.ts';
import { PasswordHasher } from '../../src/lib/password.ts';

export const TEST_SECRET = 'test-secret-that-is-at-least-32-bytes-long!!';
/** A password that passes every rule. */
export const GOOD_PASSWORD = 'correct-zebra-staple-91';

/** Header the test socket-address hook reads; production reads the real socket instead. */
export const PEER_HEADER = 'x-test-peer';

/** Cheap argon2id so a suite with hundreds of registrations stays fast; production cost is tested separately. */
export const CHEAP_HASHER = () => new PasswordHasher({ memoryCost: 256, timeCost: 1 });

export interface TestApp {
  app: ReturnType<typeof createApp>;
  db: DbHandle;
  clock: ManualClock;
  config: Config;
  logs: string[];
  services: ReturnType<typeof createServices>;
  /** Sends a request through the app; `json` sets the body and its Content-Type. */
  request(method: string, path: string, init?: { json?: unknown; token?: string; headers?: Record<string, string>; body?: RequestInit['body']; peer?: string }): Promise<Response>;
  /** Registers an account and returns its token and user. */
  register(email?: string, password?: string): Promise<{ token: string; user: { id: string; email: string; created_at: string } }>;
  /** Registers an account, creates one API key, and returns everything. */
  registerWithKey(email?: string): Promise<{ token: string; key: string; keyId: string; userId: string }>;
}

let counter = 0;
/** A fresh unique email. */
export const uniqueEmail = () => `user${++counter}-${crypto.randomUUID().slice(0, 8)}@example.com`;

/** A fresh app. `env` overrides settings as the environment would (e.g. `{ EXPOSE_RATE_LIMIT_AUTH: '0' }`). */
export function makeTestApp(env: Record<string, string> = {}, deps: Partial<AppDeps> = {}): TestApp {
  const config = loadConfig({ EXPOSE_DB: ':memory:', EXPOSE_JWT_SECRET: TEST_SECRET, ...env });
  const db = openDb(':memory:');
  migrate(db.db);
  const clock = new ManualClock(Date.now());
  const logger = createMemoryLogger();
  const fullDeps: AppDeps = {
    config,
    db,
    jwtSecret: TEST_SECRET,
    logger,
    clock,
    hasher: CHEAP_HASHER(),
    socketAddress: (request) => request.headers.get(PEER_HEADER) ?? '192.0.2.1',
    ...deps,
  };
  const services = createServices(fullDeps);
  const app = createApp(fullDeps, services);

  const request: TestApp['request'] = (method, path, init = {}) => {
    const headers: Record<string, string> = { ...init.headers };
    let body = init.body;
    if (init.json !== undefined) {
      headers['content-type'] ??= 'application/json';
      body = JSON.stringify(init.json);
    }
    if (init.token !== undefined) headers.authorization = `Bearer ${init.token}`;
    if (init.peer !== undefined) headers[PEER_HEADER] = init.peer;
    return Promise.resolve(app.fetch(new Request(`http://localhost${path}`, { method, headers, body })));
  };

  const register: TestApp['register'] = async (email = uniqueEmail(), password = GOOD_PASSWORD) => {
    const res = await request('POST', '/api/v1/auth/register', { json: { email, password }, peer: `198.51.100.${++counter % 250}` });
    if (res.status !== 201) throw new Error(`register failed: ${res.status} ${await res.text()}`);
    return (await res.json()) as Awaited<ReturnType<TestApp['register']>>;
  };

  const registerWithKey: TestApp['registerWithKey'] = async (email) => {
    const { token, user } = await register(email);
    const res = await request('POST', '/api/v1/api-keys', { json: { name: 'test key' }, token });
    if (res.status !== 201) throw new Error(`create key failed: ${res.status} ${await res.text()}`);
    const created = (await res.json()) as { key: string; api_key: { id: string } };
    return { token, key: created.key, keyId: created.api_key.id, userId: user.id };
  };

  return { app, db, clock, config, logs: (logger as unknown as { lines: string[] }).lines, services, request, register, registerWithKey };
}
