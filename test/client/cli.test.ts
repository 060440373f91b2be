/** The `expose` command line as users run it: a real client process (`bun src/client/index.ts`) against a fake server and a real origin. */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'bun:test';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { version } from '../../package.json';
import { writeConfig } from '../../src/client/config-file.ts';
import { FakeTunnelServer } from './fake-server.ts';
import { Lines, cleanEnv, cleanUp, runClient, spawnClient } from './process.ts';

const GOOD_KEY = 'exp_k1_cli_good_key_0123456789';

/** Asserts one line on stderr, `expose: ...`, and the exit status. */
function expectOneLineError(result: { exitCode: number; stderr: string }, exitCode: number, mentions: string) {
  expect(result.exitCode).toBe(exitCode);
  const lines = result.stderr.trimEnd().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toStartWith('expose: ');
  expect(lines[0]).toContain(mentions);
}

afterAll(cleanUp);
const run = runClient;

let origin: ReturnType<typeof Bun.serve>;
beforeAll(() => {
  origin = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: (req) => new Response(`hello from ${new URL(req.url).pathname}`) });
});
afterAll(() => origin.stop(true));

const fakes: FakeTunnelServer[] = [];
afterEach(() => {
  cleanUp();
  for (const fake of fakes.splice(0)) fake.stop();
});
function newFake(): FakeTunnelServer {
  const fake = new FakeTunnelServer();
  fakes.push(fake);
  return fake;
}
describe('expose --help and --version', () => {
  it('prints the version from package.json', async () => {
    const result = await run(['--version']);
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toStartWith(`expose ${version} (bun `);
  });

  it('prints usage with every command, and the test-only intervals', async () => {
    const result = await run(['--help']);
    expect(result.exitCode).toBe(0);
    for (const text of ['expose login', 'expose http', '--subdomain', '--host-header preserve', '--json', 'EXPOSE_SERVER', 'EXPOSE_API_KEY', 'EXPOSE_HEARTBEAT_MS', 'EXPOSE_DEAD_AFTER_MS']) {
      expect(result.stdout).toContain(text);
    }
  });
});

describe('usage errors', () => {
  const cases: [string[], string][] = [
    [[], 'no command'],
    [['frobnicate'], 'unknown command'],
    [['http'], 'needs the local port'],
    [['http', '99999'], 'from 1 to 65535'],
    [['http', '3000', '--subdomain', 'my_app'], 'invalid --subdomain'],
    [['http', '3000', '--host-header', 'keep'], '--host-header'],
    [['login', '--subdomain', 'myapp'], 'does not apply to login'],
  ];
  for (const [args, mentions] of cases) {
    it(`exits 2 with one line for \`expose ${args.join(' ')}\``, async () => {
      expectOneLineError(await run(args), 2, mentions);
    });
  }

  it('never echoes a key given to a mistyped flag', async () => {
    const result = await run(['http', '3000', `--kye=${GOOD_KEY}`]);
    expectOneLineError(result, 2, 'unknown option --kye');
    expect(result.stderr).not.toContain(GOOD_KEY);
  });
});

describe('expose login', () => {
  let api: ReturnType<typeof Bun.serve>;
  beforeAll(() => {
    api = Bun.serve({
      port: 0,
      hostname: '127.0.0.1',
      fetch: (req) => {
        if (new URL(req.url).pathname !== '/api/v1/users/me') return new Response('not found', { status: 404 });
        if (req.headers.get('authorization') !== `Bearer ${GOOD_KEY}`) return Response.json({ error: 'unauthorized', message: 'Invalid credentials' }, { status: 401 });
        return Response.json({ id: 'user-1', email: 'ada@example.com' });
      },
    });
  });
  afterAll(() => api.stop(true));
  const server = () => `http://127.0.0.1:${api.port}`;

  it('checks the key from stdin and saves it with mode 0600 in a 0700 directory', async () => {
    const env = cleanEnv();
    const result = await run(['login', '--server', server()], { env, stdin: `${GOOD_KEY}\n` });
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toContain('ada@example.com');
    expect(result.stdout + result.stderr).not.toContain(GOOD_KEY);
    const path = join(env.XDG_CONFIG_HOME!, 'expose', 'config.json');
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(join(env.XDG_CONFIG_HOME!, 'expose')).mode & 0o777).toBe(0o700);
    expect(JSON.parse(readFileSync(path, 'utf8'))).toEqual({ server: server(), api_key: GOOD_KEY });
  });

  it('refuses a key the server refuses, with one line and nothing saved', async () => {
    const env = cleanEnv();
    const badKey = 'exp_k1_revoked_or_wrong';
    const result = await run(['login', '--server', server()], { env, stdin: `${badKey}\n` });
    expectOneLineError(result, 1, '401');
    expect(result.stdout + result.stderr).not.toContain(badKey);
    expect(existsSync(join(env.XDG_CONFIG_HOME!, 'expose', 'config.json'))).toBe(false);
  });

  it('refuses an empty stdin', async () => {
    expectOneLineError(await run(['login', '--server', server()], { stdin: '' }), 1, 'no API key on stdin');
  });
});

describe('expose http', () => {
  it('tunnels with the saved key, prints JSON events, and closes with 1000 on SIGINT', async () => {
    const fake = newFake();
    const env = cleanEnv();
    writeConfig(join(env.XDG_CONFIG_HOME!, 'expose', 'config.json'), { server: fake.url, api_key: GOOD_KEY });
    const child = spawnClient(['http', String(origin.port), '--json'], env);
    const lines = new Lines(child.stdout);

    const connection = await fake.connection();
    expect((await connection.message('Auth')).data.api_key).toBe(GOOD_KEY);
    await connection.handshake({ subdomain: 'myapp' });
    const ready = JSON.parse(await lines.find((line) => line.includes('"ready"')));
    expect(ready).toMatchObject({ event: 'ready', public_url: 'http://myapp.expose.test', subdomain: 'myapp' });

    connection.open(1, 'GET', '/hello?token=secret', [['Host', 'myapp.expose.test']]);
    const result = await connection.result(1);
    expect(result.kind === 'response' && new TextDecoder().decode(result.body)).toBe('hello from /hello');
    const request = JSON.parse(await lines.find((line) => line.includes('"request"')));
    expect(request).toMatchObject({ event: 'request', method: 'GET', path: '/hello', status: 200 });
    expect(typeof request.duration_ms).toBe('number');

    // Neither the saved key nor one from the environment is ever on the command line.
    const cmdline = readFileSync(`/proc/${child.pid}/cmdline`, 'utf8');
    expect(cmdline).not.toContain(GOOD_KEY);

    child.kill('SIGINT');
    expect((await connection.closed()).code).toBe(1000);
    expect(await child.exited).toBe(0);
    const all = [...lines.seen, ...(await lines.rest())];
    const events = all.map((line) => JSON.parse(line));
    expect(events.filter((e) => e.event === 'state').map((e) => e.state)).toEqual(['Connecting', 'Authenticating', 'Registering', 'Connected', 'Disconnected']);
    expect(all.join('\n')).not.toContain(GOOD_KEY);
  });

  it('does not send the saved key to another server', async () => {
    const fake = newFake();
    const env = cleanEnv();
    writeConfig(join(env.XDG_CONFIG_HOME!, 'expose', 'config.json'), { server: 'http://127.0.0.1:1', api_key: GOOD_KEY });
    const result = await run(['http', String(origin.port), '--server', fake.url], { env });
    expectOneLineError(result, 1, `no API key for ${fake.url}`);
    expect(fake.connections).toHaveLength(0);
  });

  const fatalCases = [
    { code: 4001, goAway: 'revoked', line: 'expose: API key revoked' },
    { code: 4003, goAway: undefined, line: 'expose: forbidden' },
    { code: 4010, goAway: 'closed_by_owner', line: 'expose: tunnel closed by its owner' },
    { code: 4009, goAway: 'replaced', line: 'expose: replaced by a newer connection' },
  ] as const;
  it('exits 1 with one line, without reconnecting, after 4001, 4003, 4010 and 4009', async () => {
    await Promise.all(
      fatalCases.map(async ({ code, goAway, line }) => {
        const fake = newFake();
        const child = spawnClient(['http', String(origin.port), '--server', fake.url], cleanEnv({ EXPOSE_API_KEY: GOOD_KEY }));
        const connection = await fake.connection();
        await connection.handshake();
        if (goAway) connection.send({ type: 'GoAway', data: { reason: goAway } });
        connection.ws.close(code, 'bye');
        const [exitCode, stderr] = await Promise.all([child.exited, new Response(child.stderr).text()]);
        expect({ code, exitCode }).toEqual({ code, exitCode: 1 });
        expect(stderr.trimEnd().split('\n')).toHaveLength(1);
        expect(stderr).toStartWith(line);
        expect(fake.connections).toHaveLength(1);
      }),
    );
  });

  it('takes its heartbeat and silence limits from EXPOSE_HEARTBEAT_MS and EXPOSE_DEAD_AFTER_MS', async () => {
    const fake = newFake();
    const env = cleanEnv({ EXPOSE_API_KEY: GOOD_KEY, EXPOSE_SERVER: fake.url, EXPOSE_HEARTBEAT_MS: '20', EXPOSE_DEAD_AFTER_MS: '300' });
    const child = spawnClient(['http', String(origin.port)], env);
    const first = await fake.connection();
    await first.handshake({ subdomain: 'beat', resumeToken: 'token-beat' });
    await first.message('Heartbeat', 2);
    // The fake server stays silent, so the client gives up on it after 300 ms and comes back.
    const second = await fake.connection(1);
    expect((await second.message('Auth')).data.api_key).toBe(GOOD_KEY);
    second.send({ type: 'AuthResult', data: { success: true, user_id: 'user-1', error: null } });
    expect((await second.message('RegisterTunnel')).data).toEqual({ subdomain: 'beat', local_port: origin.port!, resume_token: 'token-beat' });
    // Plain lines when stdout is not a terminal.
    const lines = new Lines(child.stdout);
    expect(await lines.find((line) => line.includes('Forwarding'))).toContain('http://beat.expose.test -> http://localhost:');
    child.kill('SIGTERM');
    expect(await child.exited).toBe(0);
  });
});
