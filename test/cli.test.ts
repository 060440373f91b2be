/**
 * The command line of the compiled binary: --help, --version, the operator's `user` commands, the
 * container healthcheck, and one clear line plus a non-zero exit for every bad flag or setting.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'bun:test';
import { join } from 'node:path';
import { version } from '../package.json';
import { SETTINGS } from '../src/config.ts';
import { parseArgs } from '../src/cli/args.ts';
import { applyKeystrokes, type HiddenLine } from '../src/cli/password-input.ts';
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

describe('expose-server --help and --version', () => {
  it('lists every setting with its flag, variable and default', async () => {
    const result = await cli(['--help']);
    expect(result.exitCode).toBe(0);
    for (const setting of SETTINGS) {
      const line = result.stdout.split('\n').find((text) => text.trimStart().startsWith(`${setting.flag} `));
      expect(line).toBeDefined();
      expect(line).toContain(setting.env);
      expect(line).toContain(`default ${setting.defaultText}`);
    }
    for (const command of ['user add <email>', 'user passwd <email>', 'user list', 'healthcheck']) expect(result.stdout).toContain(command);
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
    expect(lines[0]).toMatch(/^ID\s+EMAIL\s+CREATED_AT$/);
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
    [['frobnicate'], 'unknown command "frobnicate"'],
    [['serve', 'now'], 'serve takes no arguments'],
  ])('refuses %p with exit 2 and one line', async (args, mentions) => {
    expectOneLineFailure(await cli(args as string[]), 2, mentions);
  });

  it.each([
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
    const safe: Record<string, string> = { EXPOSE_DB: ':memory:', EXPOSE_HOST: '127.0.0.1' };
    if (name !== 'PORT') safe.EXPOSE_PORT = '0';
    const result = await cli([], { env: { ...safe, [name]: value } });
    expectOneLineFailure(result, 2, `${name}:`);
  });

  it('lets a flag win over its environment variable', async () => {
    const result = await cli(['user', 'list', '--db', ':memory:'], { env: { EXPOSE_DB: '/nonexistent-dir/expose.db' } });
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toContain('no accounts');
  });

  it('fails with one line naming the file when the database cannot be opened', async () => {
    expectOneLineFailure(await cli(['user', 'list'], { env: { EXPOSE_DB: '/nonexistent-dir/expose.db' } }), 1, 'cannot open database "/nonexistent-dir/expose.db"');
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
