/**
 * The compiled binary end to end, as an operator runs it: alone in an empty directory, a database that
 * does not exist yet, a port the kernel picks; then a stop signal and a restart on the same database.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'bun:test';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openDb } from '../src/db/client.ts';
import { migrate } from '../src/db/migrate.ts';
import { BINARY_TEST_PASSWORD, ServerProcess, installBinary, jsonRequest, removeTempDirs, runBinary, tempDir } from './helpers/binary.ts';

const BUILD_TIMEOUT_MS = 120_000;
const running: ServerProcess[] = [];

async function start(binary: string, cwd: string, env: Record<string, string> = {}): Promise<ServerProcess> {
  const server = await ServerProcess.start(binary, { cwd, env });
  running.push(server);
  return server;
}

afterEach(() => {
  for (const server of running.splice(0)) server.kill();
});
afterAll(removeTempDirs);

let binary: string;
let dir: string;
beforeAll(async () => {
  ({ binary, dir } = await installBinary());
}, BUILD_TIMEOUT_MS);

interface Account {
  token: string;
  key: string;
  keyId: string;
  userId: string;
}

/** Bun's HTTP parser (uWebSockets) refuses a request past these with 431 before our code runs; measured on Bun 1.4.5. */
const MAX_HEADER_FIELDS = 198;
const MAX_REQUEST_HEAD_BYTES = 16 * 1024;

/** Sends `head` (request line and headers, as raw bytes) on its own connection; resolves with the status line. */
function rawStatusLine(port: number, head: string): Promise<string> {
  const { promise, resolve } = Promise.withResolvers<string>();
  let received = '';
  void Bun.connect({
    hostname: '127.0.0.1',
    port,
    socket: {
      open: (socket) => void socket.write(head),
      data: (_socket, data) => void (received += data.toString()),
      close: () => resolve(received.split('\r\n')[0]!),
      error: () => resolve(received.split('\r\n')[0]!),
    },
  });
  return promise;
}

/** A GET /health head with `fields` header fields in all (Host and Connection included). */
const headWithFields = (fields: number) =>
  `GET /health HTTP/1.1\r\nHost: localhost\r\n${Array.from({ length: fields - 2 }, (_, i) => `X-F${i}: v\r\n`).join('')}Connection: close\r\n\r\n`;

/** A GET /health head exactly `bytes` long, padded by one header. */
function headOfBytes(bytes: number): string {
  const frame = (pad: string) => `GET /health HTTP/1.1\r\nHost: localhost\r\nX-Pad: ${pad}\r\nConnection: close\r\n\r\n`;
  return frame('a'.repeat(bytes - frame('').length));
}

async function registerWithKey(server: ServerProcess, email: string): Promise<Account> {
  const registered = await server.fetch('/api/v1/auth/register', jsonRequest('POST', { email, password: BINARY_TEST_PASSWORD }));
  expect(registered.status).toBe(201);
  const login = await server.fetch('/api/v1/auth/login', jsonRequest('POST', { email, password: BINARY_TEST_PASSWORD }));
  expect(login.status).toBe(200);
  const { token, user } = (await login.json()) as { token: string; user: { id: string } };
  const created = await server.fetch('/api/v1/api-keys', jsonRequest('POST', { name: 'laptop' }, token));
  expect(created.status).toBe(201);
  const { key, api_key } = (await created.json()) as { key: string; api_key: { id: string } };
  return { token, key, keyId: api_key.id, userId: user.id };
}

describe('the compiled binary', () => {
  it('serves the API from an empty directory, stops cleanly on SIGTERM, and keeps users, keys and sessions across a restart', async () => {
    const dataDir = tempDir('expose-data-');
    const env = { EXPOSE_DB: join(dataDir, 'expose.db') };
    const first = await start(binary, dir, env);
    expect((await first.fetch('/health')).status).toBe(200);

    const account = await registerWithKey(first, 'restart@example.com');
    const viaKey = await first.fetch('/api/v1/users/me', jsonRequest('GET', undefined, account.key));
    expect(viaKey.status).toBe(200);
    expect(((await viaKey.json()) as { id: string }).id).toBe(account.userId);

    expect(await first.stop('SIGTERM')).toBe(0);
    expect(first.logs.map((line) => line.msg)).toContain('stopped');
    // Every line on stdout is JSON (a log shipper's parser must never choke) and stderr stays empty:
    // Elysia once printed a multi-line warning here about a minified hook it could not analyse.
    expect(first.logs.filter((line) => line.msg === '(not JSON)')).toEqual([]);
    expect(first.stderr).toBe('');
    // The WAL was folded into the database file: one self-contained file is left.
    expect(existsSync(join(dataDir, 'expose.db'))).toBe(true);
    expect(existsSync(join(dataDir, 'expose.db-wal'))).toBe(false);

    // Same database, no configured secret: the generated one was kept, so the session still holds.
    const second = await start(binary, dir, env);
    const viaToken = await second.fetch('/api/v1/users/me', jsonRequest('GET', undefined, account.token));
    expect(viaToken.status).toBe(200);
    const keys = await second.fetch('/api/v1/api-keys', jsonRequest('GET', undefined, account.key));
    expect(keys.status).toBe(200);
    const list = (await keys.json()) as Array<{ id: string; last_used_at: string | null }>;
    expect(list.map((k) => k.id)).toEqual([account.keyId]);
    expect(list[0]!.last_used_at).not.toBeNull();
    const login = await second.fetch('/api/v1/auth/login', jsonRequest('POST', { email: 'restart@example.com', password: BINARY_TEST_PASSWORD }));
    expect(login.status).toBe(200);
    expect(await second.stop('SIGINT')).toBe(0);
  });

  it('lets a request in flight finish after SIGTERM while refusing new connections', async () => {
    const server = await start(binary, dir, { EXPOSE_DB: join(tempDir('expose-data-'), 'expose.db'), EXPOSE_LOG_LEVEL: 'debug' });
    const body = JSON.stringify({ email: 'inflight@example.com', password: BINARY_TEST_PASSWORD });
    const half = Math.floor(body.length / 2);

    // A raw connection, so the request can be held open mid-body for as long as the test needs.
    let received = '';
    const { promise: closed, resolve: onClose } = Promise.withResolvers<void>();
    const socket = await Bun.connect({
      hostname: '127.0.0.1',
      port: server.port,
      socket: {
        data: (_socket, data) => void (received += data.toString()),
        close: () => onClose(),
        error: () => onClose(),
      },
    });
    socket.write(
      'POST /api/v1/auth/register HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n' +
        `Content-Length: ${body.length}\r\nX-Request-Id: held-open\r\nConnection: close\r\n\r\n${body.slice(0, half)}`,
    );
    await server.waitForLog((line) => line.msg === 'request started' && line.request_id === 'held-open');

    const exited = server.stop('SIGTERM');
    await server.waitForLog((line) => line.msg === 'stopping');
    await expect(fetch(`${server.url}/health`)).rejects.toThrow();

    socket.write(body.slice(half));
    await closed;
    expect(received).toStartWith('HTTP/1.1 201');
    expect(await exited).toBe(0);
    const order = server.logs.map((line) => (line.msg === 'request' ? `request ${line.request_id}` : line.msg));
    expect(order.slice(order.indexOf('stopping'))).toEqual(['stopping', 'request held-open', 'stopped']);
    expect(server.logs.at(-1)).toMatchObject({ msg: 'stopped', drained: true });
  });

  it('writes one JSON access-log line per request, with its request id and no credential or query string', async () => {
    const server = await start(binary, dir, { EXPOSE_DB: join(tempDir('expose-data-'), 'expose.db') });
    const account = await registerWithKey(server, 'logs@example.com');

    const traced = await server.fetch('/api/v1/users/me?token=query-secret', jsonRequest('GET', undefined, account.key, { 'x-request-id': 'trace-42.a_b' }));
    expect(traced.headers.get('x-request-id')).toBe('trace-42.a_b');
    const line = await server.waitForRequestLog('trace-42.a_b');
    expect(line).toMatchObject({ level: 'info', msg: 'request', method: 'GET', path: '/api/v1/users/me', status: 200, ip: '127.0.0.1' });
    expect(typeof line.duration_ms).toBe('number');

    // An id that could forge log fields or headers is replaced by a fresh one.
    const unsafe = await server.fetch('/nowhere', { headers: { 'x-request-id': 'a"b' } });
    expect(unsafe.status).toBe(404);
    const replaced = unsafe.headers.get('x-request-id')!;
    expect(replaced).toMatch(/^[0-9a-f-]{36}$/);
    expect(await server.waitForRequestLog(replaced)).toMatchObject({ path: '/nowhere', status: 404 });

    const everyAnswer = await Promise.all(
      ['/health', '/docs', '/docs/json', '/docs/assets/swagger-ui.css', '/api/v1/users/me'].map((path) => server.fetch(path)),
    );
    for (const answer of everyAnswer) expect(answer.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    await Promise.all(everyAnswer.map((answer) => server.waitForRequestLog(answer.headers.get('x-request-id')!)));

    const logged = JSON.stringify(server.logs);
    for (const secret of [account.token, account.key, BINARY_TEST_PASSWORD, 'query-secret']) expect(logged).not.toContain(secret);
    expect(await server.stop()).toBe(0);
  });

  it('ignores a .env, bunfig.toml and tsconfig.json in its working directory', async () => {
    const { binary: isolated, dir: cwd } = await installBinary();
    writeFileSync(join(cwd, '.env'), 'EXPOSE_LOG_LEVEL=not-a-level\nEXPOSE_REGISTRATION=closed\n');
    writeFileSync(join(cwd, 'bunfig.toml'), 'preload = ["./preload.js"]\n[run]\npreload = ["./preload.js"]\n');
    writeFileSync(join(cwd, 'preload.js'), 'require("node:fs").writeFileSync("preloaded", "yes");\n');
    writeFileSync(join(cwd, 'tsconfig.json'), '{ "compilerOptions": { "jsx": "nonsense" } }\n');
    // Were .env read, the bad log level would stop start-up and registration would be closed.
    const server = await start(isolated, cwd);
    const registered = await server.fetch('/api/v1/auth/register', jsonRequest('POST', { email: 'dotenv@example.com', password: BINARY_TEST_PASSWORD }));
    expect(registered.status).toBe(201);
    expect(existsSync(join(cwd, 'preloaded'))).toBe(false);
    // Default EXPOSE_DB is ./expose.db, created in the working directory.
    expect(existsSync(join(cwd, 'expose.db'))).toBe(true);
    expect(await server.stop()).toBe(0);
  });

  it('says at start where it can be reached and whether anyone who reaches it may register', async () => {
    const open = await ServerProcess.start(binary, { cwd: dir, env: { EXPOSE_DB: ':memory:' }, args: ['--host', '0.0.0.0'] });
    running.push(open);
    const listening = await open.waitForLog((line) => line.msg === 'listening');
    expect(listening.url).toBe(`http://0.0.0.0:${open.port}`);
    expect(listening.reachable_at).toContain(`http://127.0.0.1:${open.port}`);
    const warning = await open.waitForLog((line) => line.registration === 'open');
    expect(warning).toMatchObject({ level: 'warn', msg: 'registration is open: anyone who can reach this server can create an account' });
    expect(warning.to_close).toContain('EXPOSE_REGISTRATION=closed');
    expect(await open.stop()).toBe(0);

    const closed = await start(binary, dir, { EXPOSE_DB: ':memory:', EXPOSE_REGISTRATION: 'closed' });
    const notice = await closed.waitForLog((line) => line.registration === 'closed');
    expect(notice.level).toBe('info');
    expect(notice.msg).toContain('registration is closed');
    expect((await closed.waitForLog((line) => line.msg === 'listening')).reachable_at).toEqual([closed.url]);
    expect(await closed.stop()).toBe(0);
  });

  it('answers 431 exactly past the header limits the README states', async () => {
    const readme = readFileSync(join(import.meta.dir, '..', 'README.md'), 'utf8');
    expect(readme).toContain(`more than ${MAX_HEADER_FIELDS} header fields`);
    expect(readme).toContain(`over 16 KiB (${MAX_REQUEST_HEAD_BYTES.toLocaleString('en')} bytes)`);
    const server = await start(binary, dir, { EXPOSE_DB: ':memory:' });
    expect(await rawStatusLine(server.port, headWithFields(MAX_HEADER_FIELDS))).toBe('HTTP/1.1 200 OK');
    expect(await rawStatusLine(server.port, headWithFields(MAX_HEADER_FIELDS + 1))).toStartWith('HTTP/1.1 431');
    expect(await rawStatusLine(server.port, headOfBytes(MAX_REQUEST_HEAD_BYTES))).toBe('HTTP/1.1 200 OK');
    expect(await rawStatusLine(server.port, headOfBytes(MAX_REQUEST_HEAD_BYTES + 1))).toStartWith('HTTP/1.1 431');
    expect(await server.stop()).toBe(0);
  });

  it('refuses to start with one line when its port is taken', async () => {
    const holder = await start(binary, dir, { EXPOSE_DB: ':memory:' });
    const result = await runBinary(binary, ['--host', '127.0.0.1', '--port', String(holder.port)], { cwd: dir, env: { EXPOSE_DB: ':memory:' } });
    expect(result.exitCode).toBe(1);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toContain(`cannot listen on http://127.0.0.1:${holder.port}`);
    expect(await holder.stop()).toBe(0);
  });
});

describe('a database from before emails were Unicode-normalised', () => {
  it('names, once, the accounts whose emails differ only in form, and leaves both', async () => {
    const dbPath = join(tempDir('expose-nfc-'), 'expose.db');
    const prepared = openDb(dbPath);
    migrate(prepared.db);
    const insert = prepared.sqlite.query("INSERT INTO users (id, email, password_hash, created_at, updated_at) VALUES (?, ?, 'x', 0, 0)");
    insert.run(crypto.randomUUID(), 'j\u00e4ger@example.com');
    insert.run(crypto.randomUUID(), 'ja\u0308ger@example.com');
    // As a database written by a release before the pass: it has not run there yet.
    prepared.sqlite.run("DELETE FROM settings WHERE key = 'emails_nfc'");
    prepared.sqlite.close();

    const first = await start(binary, dir, { EXPOSE_DB: dbPath });
    const warning = await first.waitForLog((line) => String(line.msg).startsWith('accounts whose emails differ only in Unicode form'));
    expect(warning.emails).toEqual(['ja\u0308ger@example.com']);
    expect(await first.stop()).toBe(0);

    const second = await start(binary, dir, { EXPOSE_DB: dbPath });
    expect(await second.stop()).toBe(0);
    expect(second.logs.some((line) => String(line.msg).startsWith('accounts whose emails'))).toBe(false);
    const after = openDb(dbPath);
    expect(after.sqlite.query('SELECT count(*) AS n FROM users').get()).toEqual({ n: 2 });
    after.sqlite.close();
  });
});

describe('stopping with tunnels connected', () => {
  it('tells each tunnel client (GoAway shutdown, close 1001) and drains without waiting on their sockets', async () => {
    const server = await start(binary, dir, { EXPOSE_DB: join(tempDir('expose-data-'), 'expose.db') });
    const account = await registerWithKey(server, 'tunnels-at-stop@example.com');
    const clients = await Promise.all(
      ['stop-one', 'stop-two'].map(async (subdomain) => {
        const ws = new WebSocket(`${server.url.replace('http', 'ws')}/api/v1/tunnel/connect`);
        const texts: string[] = [];
        const closed = new Promise<number>((resolve) => ws.addEventListener('close', (event) => resolve(event.code)));
        const ready = new Promise<void>((resolve) =>
          ws.addEventListener('message', (event) => {
            texts.push(String(event.data));
            if (String(event.data).includes('"TunnelReady"')) resolve();
          }),
        );
        ws.addEventListener('open', () => {
          ws.send(JSON.stringify({ type: 'Auth', data: { api_key: account.key } }));
          ws.send(JSON.stringify({ type: 'RegisterTunnel', data: { subdomain, local_port: 9 } }));
        });
        await ready;
        return { texts, closed };
      }),
    );
    expect(await server.stop()).toBe(0);
    for (const client of clients) {
      expect(await client.closed).toBe(1001);
      expect(client.texts.at(-1)).toBe('{"type":"GoAway","data":{"reason":"shutdown"}}');
    }
    // Had the idle tunnel sockets held the drain open, the grace period would have run out instead.
    expect(server.logs.at(-1)).toMatchObject({ msg: 'stopped', drained: true });
    expect(server.logs.some((line) => line.msg === 'closing connections still in flight')).toBe(false);
  });
});
