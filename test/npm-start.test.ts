/**
 * `npm start` behaves as the compiled binary does: it reads no .env (configuration is the environment
 * and the flags, nothing else), and a SIGTERM sent to npm stops the server instead of orphaning it on
 * its port. Run from a copy of the project's top level, so the .env it ignores is not the developer's.
 */
import { afterAll, afterEach, describe, expect, it } from 'bun:test';
import { copyFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BINARY_TEST_PASSWORD, cleanEnv, jsonRequest, removeTempDirs, tempDir, type LogLine } from './helpers/binary.ts';

const ROOT = join(import.meta.dir, '..');
/** What `npm start` needs beside package.json; linked, not copied. */
const LINKED = ['src', 'drizzle', 'node_modules', 'bunfig.toml', 'tsconfig.json'];
const START_TIMEOUT_MS = 20_000;

/** Process ids a test started, killed afterwards if a failure left them running. */
const started: number[] = [];
afterEach(() => {
  for (const pid of started.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone, as it should be.
    }
  }
});
afterAll(removeTempDirs);

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A copy of the project's top level; with `dotEnv`, a .env that, were it read, would stop start-up and close registration. */
function project(dotEnv: boolean): string {
  const dir = tempDir('expose-npm-');
  copyFileSync(join(ROOT, 'package.json'), join(dir, 'package.json'));
  for (const name of LINKED) symlinkSync(join(ROOT, name), join(dir, name));
  if (dotEnv) writeFileSync(join(dir, '.env'), 'EXPOSE_LOG_LEVEL=not-a-level\nEXPOSE_REGISTRATION=closed\n');
  return dir;
}

/** Runs `npm start` on 127.0.0.1 and a kernel-chosen port; resolves with npm's process and the server's `listening` line. */
async function npmStart(cwd: string): Promise<{ npm: Bun.Subprocess<'ignore', 'pipe', 'pipe'>; listening: LogLine }> {
  const npm = Bun.spawn(['npm', 'start'], {
    cwd,
    env: cleanEnv({ EXPOSE_HOST: '127.0.0.1', EXPOSE_PORT: '0', EXPOSE_DB: ':memory:', npm_config_update_notifier: 'false' }),
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
  });
  started.push(npm.pid);
  const stderr = new Response(npm.stderr).text();
  const reader = npm.stdout.getReader();
  const decoder = new TextDecoder();
  let text = '';
  const deadline = Date.now() + START_TIMEOUT_MS;
  // npm prints its own banner first; the server's lines are the JSON ones.
  while (Date.now() < deadline) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`npm start exited before listening: ${text}${await stderr}`);
    text += decoder.decode(value, { stream: true });
    const line = text.split('\n').find((candidate) => candidate.includes('"msg":"listening"'));
    if (line) {
      reader.releaseLock();
      const listening = JSON.parse(line) as LogLine;
      started.push(Number(listening.pid));
      return { npm, listening };
    }
  }
  throw new Error(`npm start did not listen within ${START_TIMEOUT_MS} ms: ${text}`);
}

/**
 * Sends half of a registration on a raw connection; `finish` sends the rest and resolves with all the
 * server answered ('' when it cut the connection). The request stays in flight until then.
 */
async function startRegistration(port: number): Promise<{ finish(): Promise<string> }> {
  const body = JSON.stringify({ email: 'in-flight@example.com', password: BINARY_TEST_PASSWORD });
  const half = Math.floor(body.length / 2);
  let received = '';
  const { promise: closed, resolve: onClose } = Promise.withResolvers<void>();
  const socket = await Bun.connect({
    hostname: '127.0.0.1',
    port,
    socket: { data: (_socket, data) => void (received += data.toString()), close: () => onClose(), error: () => onClose() },
  });
  socket.write(
    'POST /api/v1/auth/register HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n' +
      `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n${body.slice(0, half)}`,
  );
  return {
    async finish() {
      socket.write(body.slice(half));
      await closed;
      return received;
    },
  };
}

describe('npm start', () => {
  it('ignores a .env in the project, as the compiled binary does', async () => {
    const { npm, listening } = await npmStart(project(true));
    const register = await fetch(
      `http://127.0.0.1:${listening.port}/api/v1/auth/register`,
      jsonRequest('POST', { email: 'dotenv@example.com', password: BINARY_TEST_PASSWORD }),
    );
    expect(register.status).toBe(201);
    npm.kill('SIGTERM');
    expect(await npm.exited).toBe(0);
  });

  it('stops the server when npm gets SIGTERM: the port is free and no process is left', async () => {
    const { npm, listening } = await npmStart(project(false));
    const serverPid = Number(listening.pid);
    expect(serverPid).not.toBe(npm.pid);
    expect((await fetch(`http://127.0.0.1:${listening.port}/health`)).status).toBe(200);

    npm.kill('SIGTERM');
    expect(await npm.exited).toBe(0);
    // npm waits for its child before it exits; a server orphaned by a shell in between would still be here.
    expect(isAlive(serverPid)).toBe(false);
    await expect(fetch(`http://127.0.0.1:${listening.port}/health`)).rejects.toThrow();
  });

  it('stops gracefully on Ctrl-C at a terminal, though npm forwards a second SIGINT: a request in flight still finishes', async () => {
    let screen = '';
    const npm = Bun.spawn(['npm', 'start', '--', '--log-level', 'debug'], {
      cwd: project(false),
      env: cleanEnv({ EXPOSE_HOST: '127.0.0.1', EXPOSE_PORT: '0', EXPOSE_DB: ':memory:', npm_config_update_notifier: 'false' }),
      terminal: { data: (_terminal, data) => void (screen += new TextDecoder().decode(data)) },
    });
    started.push(npm.pid);
    /** Waits until the terminal shows `pattern`; the screen is only ever read, never typed on, until Ctrl-C. */
    const shown = async (pattern: RegExp) => {
      const deadline = Date.now() + START_TIMEOUT_MS;
      while (!pattern.test(screen) && Date.now() < deadline) await Bun.sleep(10);
      expect(screen).toMatch(pattern);
    };
    await shown(/"msg":"listening"/);
    started.push(Number(/"pid":(\d+)/.exec(screen)![1]));
    const held = await startRegistration(Number(/"port":(\d+)/.exec(screen)![1]));
    await shown(/"msg":"request started"/);

    // Ctrl-C: the terminal signals the whole foreground group (npm and the server), and npm forwards its copy.
    npm.terminal!.write('\u0003');
    await shown(/"msg":"stopping"/);
    expect(await held.finish()).toStartWith('HTTP/1.1 201');
    await npm.exited;
    npm.terminal?.close();
    expect(screen).toContain('"drained":true');
    expect(screen).not.toContain('closing connections still in flight');
  });
});
