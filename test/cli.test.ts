/**
 * The command line of the compiled binary: --help, --version, the operator's `user` commands, the
 * container healthcheck, and one clear line plus a non-zero exit for every bad flag or setting.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'bun:test';
import { Database } from 'bun:sqlite';
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { version } from '../package.json';
import { SETTINGS } from '../src/config.ts';
import { MIGRATION_COUNT } from '../src/db/migrate.ts';
import { parseArgs } from '../src/cli/args.ts';
import { applyKeystrokes, type HiddenLine } from '../src/lib/hidden-input.ts';
import { BINARY_TEST_PASSWORD, ServerProcess, cleanEnv, installBinary, jsonRequest, removeTempDirs, runBinary, tempDir } from './helpers/binary.ts';

const BUILD_TIMEOUT_MS = 120_000;
const OTHER_PASSWORD = 'another-zebra-staple-92';

let binary: string;
let dir: string;
beforeAll(async () => {
  ({ binary, dir } = await installBinary());
}, BUILD_TIMEOUT_MS);

const running: ServerProcess[] = [];
afterEach(() => {
  for (const server of running.splice(0)) server.kill();
});
afterAll(removeTempDirs);

/** A database path in a fresh directory. */
const freshDb = () => join(tempDir('expose-cli-'), 'expose.db');

const cli = (args: string[], opts: { env?: Record<string, string>; stdin?: string } = {}) => runBinary(binary, args, { cwd: dir, ...opts });

/** Asserts the process failed the way an operator wants: a non-zero status and exactly one line on stderr. */
function expectOneLineFailure(result: { exitCode: number; stdout: string; stderr: string }, exitCode: number, mentions: string) {
  expect(result.exitCode).toBe(exitCode);
  expect(result.stdout).toBe('');
  const lines = result.stderr.trimEnd().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toStartWith('expose-server: ');
  expect(lines[0]).toContain(mentions);
}

async function login(server: ServerProcess, email: string, password: string): Promise<Response> {
  return server.fetch('/api/v1/auth/login', jsonRequest('POST', { email, password }));
}

/** An account registered through the API, with a session token and one API key. */
async function accountWithKey(server: ServerProcess, email: string): Promise<{ token: string; key: string; keyId: string }> {
  const registered = await server.fetch('/api/v1/auth/register', jsonRequest('POST', { email, password: BINARY_TEST_PASSWORD }));
  expect(registered.status).toBe(201);
  const { token } = (await registered.json()) as { token: string };
  const created = await server.fetch('/api/v1/api-keys', jsonRequest('POST', { name: 'ci runner' }, token));
  expect(created.status).toBe(201);
  const { key, api_key } = (await created.json()) as { key: string; api_key: { id: string } };
  return { token, key, keyId: api_key.id };
}

/** The status GET /users/me answers with `credential`. */
async function meStatus(server: ServerProcess, credential: string): Promise<number> {
  return (await server.fetch('/api/v1/users/me', jsonRequest('GET', undefined, credential))).status;
}

describe('expose-server --help and --version', () => {
  it('lists every setting with its flag, variable and default', async () => {
    const result = await cli(['--help']);
    expect(result.exitCode).toBe(0);
    // What the program is, first: it long said "account API" only, from before the tunnels.
    expect(result.stdout.split('\n')[0]).toContain('self-hosted tunnel server');
    for (const setting of SETTINGS) {
      const line = result.stdout.split('\n').find((text) => text.trimStart().startsWith(`${setting.flag} `));
      expect(line).toBeDefined();
      expect(line).toContain(setting.env);
      expect(line).toContain(`default ${setting.defaultText}`);
    }
    const commands = ['user add <email>', 'user passwd <email>', 'user list', 'user disable <email>', 'user enable <email>', 'user logout <email>', 'user delete <email>', 'key list <email>', 'key revoke <id|key>', 'backup <file>', 'healthcheck'];
    for (const command of commands) expect(result.stdout).toContain(command);
  });

  it('prints the package version', async () => {
    const result = await cli(['--version']);
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toStartWith(`expose-server ${version} `);
  });
});

describe('expose-server user', () => {
  it('adds an account that can log in while registration is closed', async () => {
    const db = freshDb();
    const added = await cli(['user', 'add', ' Admin@Example.com ', '--db', db], { stdin: `${BINARY_TEST_PASSWORD}\n` });
    expect(added.exitCode).toBe(0);
    expect(added.stdout).toContain('created user admin@example.com');
    expect(added.stdout + added.stderr).not.toContain(BINARY_TEST_PASSWORD);

    const server = await ServerProcess.start(binary, { cwd: dir, env: { EXPOSE_DB: db, EXPOSE_REGISTRATION: 'closed' } });
    running.push(server);
    const register = await server.fetch('/api/v1/auth/register', jsonRequest('POST', { email: 'someone@example.com', password: BINARY_TEST_PASSWORD }));
    expect(register.status).toBe(403);
    expect((await login(server, 'admin@example.com', BINARY_TEST_PASSWORD)).status).toBe(200);
    expect(await server.stop()).toBe(0);
  });

  it('sets a password beside a running server and ends every session of that account', async () => {
    const db = freshDb();
    expect((await cli(['user', 'add', 'reset@example.com', '--db', db], { stdin: BINARY_TEST_PASSWORD })).exitCode).toBe(0);
    const server = await ServerProcess.start(binary, { cwd: dir, env: { EXPOSE_DB: db } });
    running.push(server);
    const { token } = (await (await login(server, 'reset@example.com', BINARY_TEST_PASSWORD)).json()) as { token: string };

    const reset = await cli(['user', 'passwd', 'reset@example.com'], { env: { EXPOSE_DB: db }, stdin: `${OTHER_PASSWORD}\r\n` });
    expect(reset.exitCode).toBe(0);
    expect(reset.stdout).toContain('1 session(s) ended');

    expect((await server.fetch('/api/v1/users/me', jsonRequest('GET', undefined, token))).status).toBe(401);
    expect((await login(server, 'reset@example.com', BINARY_TEST_PASSWORD)).status).toBe(401);
    expect((await login(server, 'reset@example.com', OTHER_PASSWORD)).status).toBe(200);
    expect(await server.stop()).toBe(0);
  });

  it('lists accounts oldest first, without any hash', async () => {
    const db = freshDb();
    for (const email of ['first@example.com', 'second@example.com']) {
      expect((await cli(['user', 'add', email, '--db', db], { stdin: BINARY_TEST_PASSWORD })).exitCode).toBe(0);
    }
    const listed = await cli(['user', 'list', '--db', db]);
    expect(listed.exitCode).toBe(0);
    const lines = listed.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ID\s+EMAIL\s+CREATED_AT\s+STATUS$/);
    expect(lines.slice(1).map((line) => line.split(/\s+/)[1])).toEqual(['first@example.com', 'second@example.com']);
    expect(listed.stdout).not.toContain('$argon2');
  });

  it('asks twice at a terminal without echoing, and refuses two different entries', async () => {
    const db = freshDb();
    const typeAtTerminal = async (email: string, entries: string[]) => {
      let screen = '';
      let prompts = 0;
      const proc = Bun.spawn([binary, 'user', 'add', email, '--db', db], {
        cwd: dir,
        env: cleanEnv(),
        terminal: {
          data: (terminal, data) => {
            screen += new TextDecoder().decode(data);
            // Type each entry only once its prompt is on screen: echo is off by then.
            const shown = screen.split('password: ').length - 1;
            while (prompts < shown && prompts < entries.length) terminal.write(`${entries[prompts++]}\r`);
          },
        },
      });
      const exitCode = await proc.exited;
      proc.terminal?.close();
      return { exitCode, screen };
    };

    const typed = await typeAtTerminal('tty@example.com', [BINARY_TEST_PASSWORD, BINARY_TEST_PASSWORD]);
    expect(typed.screen).toContain('New password: ');
    expect(typed.screen).toContain('Repeat password: ');
    expect(typed.screen).toContain('created user tty@example.com');
    expect(typed.screen).not.toContain(BINARY_TEST_PASSWORD);
    expect(typed.exitCode).toBe(0);

    const mismatch = await typeAtTerminal('typo@example.com', [BINARY_TEST_PASSWORD, OTHER_PASSWORD]);
    expect(mismatch.exitCode).toBe(1);
    expect(mismatch.screen).toContain('the two passwords do not match');
  });

  it('never takes the password from the command line', async () => {
    expectOneLineFailure(await cli(['user', 'add', 'argv@example.com', BINARY_TEST_PASSWORD, '--db', freshDb()]), 2, 'never given as an argument');
    expectOneLineFailure(await cli(['user', 'add', 'argv@example.com', `--password=${BINARY_TEST_PASSWORD}`, '--db', freshDb()]), 2, 'never taken on the command line');
  });

  it('fails with one line on a weak password, a taken email, an unknown account or an empty stdin', async () => {
    const db = freshDb();
    expectOneLineFailure(await cli(['user', 'add', 'weak@example.com', '--db', db], { stdin: 'short\n' }), 1, 'at least 8 characters');
    expectOneLineFailure(await cli(['user', 'add', 'weak@example.com', '--db', db], { stdin: 'password123\n' }), 1, 'too common');
    expect((await cli(['user', 'add', 'taken@example.com', '--db', db], { stdin: BINARY_TEST_PASSWORD })).exitCode).toBe(0);
    expectOneLineFailure(await cli(['user', 'add', 'TAKEN@example.com', '--db', db], { stdin: BINARY_TEST_PASSWORD }), 1, 'already exists');
    expectOneLineFailure(await cli(['user', 'passwd', 'ghost@example.com', '--db', db], { stdin: BINARY_TEST_PASSWORD }), 1, 'no account');
    expectOneLineFailure(await cli(['user', 'add', 'empty@example.com', '--db', db], { stdin: '' }), 1, 'no password on stdin');
    expectOneLineFailure(await cli(['user', 'add', 'not-an-email', '--db', db]), 2, 'not a valid email');
    expectOneLineFailure(await cli(['user', 'remove', 'x@example.com', '--db', db]), 2, 'usage');
  });
});

describe('expose-server commands on a database that is not there', () => {
  it.each([
    [['user', 'list']],
    [['user', 'passwd', 'a@example.com']],
    [['user', 'delete', 'a@example.com']],
    [['user', 'disable', 'a@example.com']],
    [['user', 'logout', 'a@example.com']],
    [['key', 'list', 'a@example.com']],
    [['key', 'revoke', '0190a3b2-0000-7000-8000-000000000000']],
    [['backup', 'copy.db']],
  ])('%p says "no database at <path>", exits 1 and creates nothing', async (args) => {
    const empty = tempDir('expose-wrong-dir-');
    const result = await runBinary(binary, args as string[], { cwd: empty, stdin: BINARY_TEST_PASSWORD });
    expectOneLineFailure(result, 1, `no database at ${join(empty, 'expose.db')}`);
    expect(readdirSync(empty)).toEqual([]);
  });
});

describe('expose-server on a database migrated by a newer release', () => {
  it('refuses to serve or run a command, naming both schema versions, and changes nothing', async () => {
    const db = freshDb();
    expect((await cli(['user', 'add', 'old@example.com', '--db', db], { stdin: BINARY_TEST_PASSWORD })).exitCode).toBe(0);
    // What a newer binary leaves behind: one more migration recorded than this one carries.
    const newer = new Database(db);
    newer.run('INSERT INTO __drizzle_migrations (hash, created_at) VALUES (?, ?)', ['from-a-newer-release', Date.UTC(2100, 0, 1)]);
    newer.close();
    const versions = `has schema ${MIGRATION_COUNT + 1}, but expose-server ${version} knows schema ${MIGRATION_COUNT} only`;

    expectOneLineFailure(await cli(['--host', '127.0.0.1', '--port', '0', '--db', db]), 1, versions);
    expectOneLineFailure(await cli(['user', 'list', '--db', db]), 1, versions);
    const recorded = new Database(db, { readonly: true });
    expect(recorded.query('SELECT count(*) AS n FROM __drizzle_migrations').get()).toEqual({ n: MIGRATION_COUNT + 1 });
    recorded.close();
  });
});

describe('expose-server user delete, disable, enable, logout', () => {
  it('deletes an account beside a running server: its sessions, keys and login are refused at once', async () => {
    const db = freshDb();
    expect((await cli(['user', 'add', 'bystander@example.com', '--db', db], { stdin: BINARY_TEST_PASSWORD })).exitCode).toBe(0);
    const server = await ServerProcess.start(binary, { cwd: dir, env: { EXPOSE_DB: db } });
    running.push(server);
    const account = await accountWithKey(server, 'leaver@example.com');

    const deleted = await cli(['user', 'delete', 'Leaver@Example.com', '--db', db]);
    expect(deleted.exitCode).toBe(0);
    expect(deleted.stdout).toContain('deleted user leaver@example.com');
    expect(deleted.stdout).toContain('1 session(s) and 1 API key(s)');

    expect(await meStatus(server, account.token)).toBe(401);
    expect(await meStatus(server, account.key)).toBe(401);
    expect((await login(server, 'leaver@example.com', BINARY_TEST_PASSWORD)).status).toBe(401);
    const listed = await cli(['user', 'list', '--db', db]);
    expect(listed.stdout).not.toContain('leaver@example.com');
    expect(listed.stdout).toContain('bystander@example.com');
    expect(await server.stop()).toBe(0);
  });

  it('disables an account (sessions end, keys and login refused) and enables it again (keys work, sessions stay ended)', async () => {
    const db = freshDb();
    const server = await ServerProcess.start(binary, { cwd: dir, env: { EXPOSE_DB: db } });
    running.push(server);
    const account = await accountWithKey(server, 'suspect@example.com');

    const disabled = await cli(['user', 'disable', 'suspect@example.com', '--db', db]);
    expect(disabled.exitCode).toBe(0);
    expect(disabled.stdout).toContain('disabled suspect@example.com; 1 session(s) ended');
    expect(await meStatus(server, account.token)).toBe(401);
    expect(await meStatus(server, account.key)).toBe(401);
    expect((await login(server, 'suspect@example.com', BINARY_TEST_PASSWORD)).status).toBe(403);
    expect((await cli(['user', 'list', '--db', db])).stdout).toMatch(/suspect@example\.com\s+\S+\s+disabled /);

    const enabled = await cli(['user', 'enable', 'suspect@example.com', '--db', db]);
    expect(enabled.exitCode).toBe(0);
    expect(enabled.stdout).toContain('enabled suspect@example.com');
    expect(await meStatus(server, account.key)).toBe(200);
    expect(await meStatus(server, account.token)).toBe(401);
    expect((await login(server, 'suspect@example.com', BINARY_TEST_PASSWORD)).status).toBe(200);
    expect(await server.stop()).toBe(0);
  });

  it('logs an account out everywhere and leaves its API keys working', async () => {
    const db = freshDb();
    const server = await ServerProcess.start(binary, { cwd: dir, env: { EXPOSE_DB: db } });
    running.push(server);
    const account = await accountWithKey(server, 'laptop-lost@example.com');
    const { token: second } = (await (await login(server, 'laptop-lost@example.com', BINARY_TEST_PASSWORD)).json()) as { token: string };

    const loggedOut = await cli(['user', 'logout', 'laptop-lost@example.com', '--db', db]);
    expect(loggedOut.exitCode).toBe(0);
    expect(loggedOut.stdout).toContain('2 session(s) of laptop-lost@example.com ended');
    expect(await meStatus(server, account.token)).toBe(401);
    expect(await meStatus(server, second)).toBe(401);
    expect(await meStatus(server, account.key)).toBe(200);
    expect(await server.stop()).toBe(0);
  });

  it('fails with one line on an unknown account or a bad argument', async () => {
    const db = freshDb();
    expect((await cli(['user', 'add', 'known@example.com', '--db', db], { stdin: BINARY_TEST_PASSWORD })).exitCode).toBe(0);
    for (const verb of ['delete', 'disable', 'enable', 'logout']) {
      expectOneLineFailure(await cli(['user', verb, 'ghost@example.com', '--db', db]), 1, 'no account with the email ghost@example.com');
      expectOneLineFailure(await cli(['user', verb, '--db', db]), 2, `user ${verb} takes exactly one argument`);
      expectOneLineFailure(await cli(['user', verb, 'not-an-email', '--db', db]), 2, 'not a valid email');
    }
    expectOneLineFailure(await cli(['user', 'delete', 'known@example.com', 'other@example.com', '--db', db]), 2, 'exactly one argument');
    expect((await cli(['user', 'list', '--db', db])).stdout).toContain('known@example.com');
  });
});

describe('expose-server key list and key revoke', () => {
  it("lists an account's keys without the key itself, and revokes one by id and one by the full key", async () => {
    const db = freshDb();
    const server = await ServerProcess.start(binary, { cwd: dir, env: { EXPOSE_DB: db } });
    running.push(server);
    const account = await accountWithKey(server, 'leaky@example.com');
    const second = await server.fetch('/api/v1/api-keys', jsonRequest('POST', { name: 'pasted in a gist' }, account.token));
    const { key: leaked } = (await second.json()) as { key: string };

    const listed = await cli(['key', 'list', 'leaky@example.com', '--db', db]);
    expect(listed.exitCode).toBe(0);
    const lines = listed.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ID\s+PREFIX\s+CREATED_AT\s+LAST_USED_AT\s+NAME$/);
    expect(lines).toHaveLength(3);
    expect(listed.stdout).toContain(account.keyId);
    expect(listed.stdout).toContain('pasted in a gist');
    expect(listed.stdout).not.toContain(account.key);
    expect(listed.stdout).not.toContain(leaked);

    const byId = await cli(['key', 'revoke', account.keyId, '--db', db]);
    expect(byId.exitCode).toBe(0);
    expect(byId.stdout).toContain(`revoked API key ${account.keyId}`);
    expect(byId.stdout).toContain('of leaky@example.com');
    expect(await meStatus(server, account.key)).toBe(401);
    expect(await meStatus(server, leaked)).toBe(200);

    const byKey = await cli(['key', 'revoke', leaked, '--db', db]);
    expect(byKey.exitCode).toBe(0);
    expect(byKey.stdout).not.toContain(leaked);
    expect(await meStatus(server, leaked)).toBe(401);
    expect(await meStatus(server, account.token)).toBe(200);
    expect((await cli(['key', 'list', 'leaky@example.com', '--db', db])).stdout).toBe('no API keys for leaky@example.com\n');
    expect(await server.stop()).toBe(0);
  });

  it('fails with one line on an unknown key or account, and never echoes a malformed key', async () => {
    const db = freshDb();
    expect((await cli(['user', 'add', 'known@example.com', '--db', db], { stdin: BINARY_TEST_PASSWORD })).exitCode).toBe(0);
    expectOneLineFailure(await cli(['key', 'revoke', '0190a3b2-0000-7000-8000-000000000000', '--db', db]), 1, 'no API key with the id');
    const almostAKey = `exp_k1_${'ab'.repeat(20)}00000000`;
    const malformed = await cli(['key', 'revoke', almostAKey, '--db', db]);
    expectOneLineFailure(malformed, 2, 'not a key id');
    expect(malformed.stderr).not.toContain(almostAKey);
    expectOneLineFailure(await cli(['key', 'list', 'ghost@example.com', '--db', db]), 1, 'no account with the email ghost@example.com');
    expectOneLineFailure(await cli(['key', 'list', '--db', db]), 2, 'key list takes exactly one argument');
    expectOneLineFailure(await cli(['key', 'rotate', '--db', db]), 2, 'usage');
  });
});

describe('expose-server backup', () => {
  it('copies the database of a running server into a file only its owner can read, even under umask 000', async () => {
    const db = freshDb();
    const server = await ServerProcess.start(binary, { cwd: dir, env: { EXPOSE_DB: db } });
    running.push(server);
    const account = await accountWithKey(server, 'saved@example.com');
    const backupDir = tempDir('expose-backup-');
    const target = join(backupDir, 'expose-backup.db');

    // Through a shell, only to set a loose umask first: the 0600 must not depend on the caller's.
    const proc = Bun.spawn(['/bin/sh', '-c', 'umask 000 && exec "$0" backup "$1" --db "$2"', binary, target, db], { cwd: dir, env: cleanEnv(), stdout: 'pipe', stderr: 'pipe' });
    const [stdout, stderr, exitCode] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    expect({ exitCode, stderr }).toEqual({ exitCode: 0, stderr: '' });
    expect(stdout).toContain(`to ${target}`);
    expect(statSync(target).mode & 0o777).toBe(0o600);
    expect(await meStatus(server, account.key)).toBe(200);
    expect(await server.stop()).toBe(0);

    // The copy is a working database: a server on it knows the account, its key and its session.
    const restored = await ServerProcess.start(binary, { cwd: dir, env: { EXPOSE_DB: target } });
    running.push(restored);
    expect(await meStatus(restored, account.key)).toBe(200);
    expect(await meStatus(restored, account.token)).toBe(200);
    expect(await restored.stop()).toBe(0);
  });

  it('never overwrites an existing file', async () => {
    const db = freshDb();
    expect((await cli(['user', 'add', 'a@example.com', '--db', db], { stdin: BINARY_TEST_PASSWORD })).exitCode).toBe(0);
    const target = join(tempDir('expose-backup-'), 'precious.db');
    writeFileSync(target, 'yesterday');
    expectOneLineFailure(await cli(['backup', target, '--db', db]), 1, 'already exists');
    expect(await Bun.file(target).text()).toBe('yesterday');
    expectOneLineFailure(await cli(['backup', '--db', db]), 2, 'backup takes exactly one argument');
  });

  it('writes the copy to stdout with "-", leaving no file behind', async () => {
    const db = freshDb();
    expect((await cli(['user', 'add', 'piped@example.com', '--db', db], { stdin: BINARY_TEST_PASSWORD })).exitCode).toBe(0);
    const proc = Bun.spawn([binary, 'backup', '-', '--db', db], { cwd: dir, env: cleanEnv(), stdout: 'pipe', stderr: 'pipe' });
    const [bytes, stderr, exitCode] = await Promise.all([new Response(proc.stdout).bytes(), new Response(proc.stderr).text(), proc.exited]);
    expect(exitCode).toBe(0);
    expect(stderr).toContain('to stdout');
    const copy = Database.deserialize(bytes);
    expect(copy.query('SELECT email FROM users').all()).toEqual([{ email: 'piped@example.com' }]);
    copy.close();
    expect(readdirSync(join(db, '..')).sort()).toEqual(['expose.db']);
    expect(existsSync(`${db}-wal`)).toBe(false);
  });
});

describe('expose-server healthcheck', () => {
  it('exits 0 when the server answers /health and 1 when nothing listens', async () => {
    const server = await ServerProcess.start(binary, { cwd: dir, env: { EXPOSE_DB: ':memory:' } });
    running.push(server);
    const healthy = await cli(['healthcheck', '--port', String(server.port)]);
    expect(healthy.exitCode).toBe(0);
    expect(await server.stop()).toBe(0);
    expectOneLineFailure(await cli(['healthcheck', '--port', String(server.port)]), 1, `127.0.0.1:${server.port}/health`);
  });
});

describe('bad command lines and settings', () => {
  it.each([
    [['--bogus', '1'], 'unknown option "--bogus"'],
    [['--port'], '--port: needs a value'],
    [['--port', 'http'], '--port: expected a whole number'],
    [['--port=70000'], '--port: must be between 0 and 65535'],
    [['--registration', 'sometimes'], '--registration'],
    [['--host', '999.1.1.1'], '--host: "999.1.1.1" is not an IP address or host name'],
    [['frobnicate'], 'unknown command "frobnicate"'],
    [['serve', 'now'], 'serve takes no arguments'],
  ])('refuses %p with exit 2 and one line', async (args, mentions) => {
    expectOneLineFailure(await cli(args as string[]), 2, mentions);
  });

  it.each([
    ['EXPOSE_HOST', '999.1.1.1'],
    ['EXPOSE_PORT', 'eighty'],
    ['PORT', '-1'],
    ['EXPOSE_DB', ' '],
    ['EXPOSE_JWT_SECRET', 'too-short'],
    ['EXPOSE_REGISTRATION', 'maybe'],
    ['EXPOSE_PASSWORD_MIN_LENGTH', '4'],
    ['EXPOSE_MAX_API_KEYS', '0'],
    ['EXPOSE_RATE_LIMIT_AUTH', 'lots'],
    ['EXPOSE_RATE_LIMIT_API', '1.5'],
    ['EXPOSE_TRUSTED_PROXIES', '10.0.0.0/33'],
    ['EXPOSE_LOG_LEVEL', 'loud'],
  ])('refuses to start when %s=%p, naming the variable in one line, before listening', async (name, value) => {
    // Were the value accepted, the server would start: on a memory database and a kernel-chosen port.
    const safe: Record<string, string> = { EXPOSE_DB: ':memory:' };
    if (name !== 'EXPOSE_HOST') safe.EXPOSE_HOST = '127.0.0.1';
    if (name !== 'PORT') safe.EXPOSE_PORT = '0';
    const result = await cli([], { env: { ...safe, [name]: value } });
    expectOneLineFailure(result, 2, `${name}:`);
  });

  it('refuses with one line a host name that does not resolve, naming the setting', async () => {
    expectOneLineFailure(await cli(['--host', 'nonexistent.invalid', '--port', '0', '--db', ':memory:']), 1, 'does not resolve (EXPOSE_HOST or --host)');
  });

  it('lets a flag win over its environment variable', async () => {
    const result = await cli(['user', 'list', '--db', ':memory:'], { env: { EXPOSE_DB: '/nonexistent-dir/expose.db' } });
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toContain('no accounts');
  });

  it('fails with one line naming the file when the database cannot be created', async () => {
    const result = await cli(['user', 'add', 'x@example.com'], { env: { EXPOSE_DB: '/nonexistent-dir/expose.db' }, stdin: BINARY_TEST_PASSWORD });
    expectOneLineFailure(result, 1, 'cannot open database "/nonexistent-dir/expose.db"');
  });
});

describe('parseArgs', () => {
  it('separates command words from setting flags wherever they stand', () => {
    expect(parseArgs(['--db', 'x.db', 'user', 'add', 'a@example.com', '--port=1'])).toEqual({
      words: ['user', 'add', 'a@example.com'],
      settingFlags: ['--db', 'x.db', '--port=1'],
      help: false,
      version: false,
    });
  });

  it('recognises --help, -h, --version and -v anywhere', () => {
    expect(parseArgs(['user', '-h'])).toMatchObject({ help: true });
    expect(parseArgs(['--port', '1', '--version'])).toMatchObject({ version: true });
  });
});

describe('applyKeystrokes', () => {
  const type = (...chunks: string[]) => chunks.reduce<HiddenLine>((line, chunk) => applyKeystrokes(line, chunk), { text: '', state: 'typing' });

  it('ends the line at Enter, whether the terminal sends CR or LF', () => {
    expect(type('secret\r')).toEqual({ text: 'secret', state: 'enter' });
    expect(type('sec', 'ret\n')).toEqual({ text: 'secret', state: 'enter' });
  });

  it('erases one character (not one byte) per backspace, and the whole line on Ctrl-U', () => {
    expect(type('pässwörd', '\u007f', '\u007f', 'rd\r').text).toBe('pässwörd');
    expect(type('mistake', '\u0015', 'right\r').text).toBe('right');
  });

  it('aborts on Ctrl-C, and on Ctrl-D at an empty line', () => {
    expect(type('half', '\u0003').state).toBe('abort');
    expect(type('\u0004').state).toBe('abort');
  });

  it('ignores arrow keys and other control characters', () => {
    expect(type('ab', '\u001b[D', '\u0001c\r').text).toBe('abc');
  });
});
