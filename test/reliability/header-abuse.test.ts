/**
 * Header abuse against a real listener (header limits live in the HTTP layer, which calling the app
 * skips): oversized Authorization headers, floods of headers, bytes that do not belong in a header,
 * and bearer values of every length. Every answer is a 4xx, and the server stays healthy throughout.
 */
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, type ServerChild } from './helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'expose-headers-'));
let server: ServerChild;
let port: number;
let token: string;

beforeAll(async () => {
  // Limits off: thousands of refused credentials from one address would otherwise turn into 429s.
  server = await startServer(join(dir, 'headers.db'), { EXPOSE_RATE_LIMIT_AUTH: '0', EXPOSE_RATE_LIMIT_API: '0' });
  port = Number(new URL(server.url).port);
  const res = await fetch(`${server.url}/api/v1/auth/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: 'headers@example.com', password: 'correct-zebra-staple-91' }),
  });
  token = ((await res.json()) as { token: string }).token;
});

afterAll(async () => {
  server.process.kill('SIGKILL');
  await server.process.exited;
  rmSync(dir, { recursive: true, force: true });
});

/** Sends `request` as raw bytes (latin1) and returns the status line's code, or 0 if the connection closed unanswered. */
function rawStatus(request: string): Promise<number> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    socket.on('data', (chunk) => {
      answer += chunk.toString('latin1');
    });
    socket.on('close', () => resolve(Number(/^HTTP\/1\.1 (\d{3}) /.exec(answer)?.[1] ?? 0)));
    // The server may close while a huge request is still being written: that is a refusal too.
    socket.on('error', () => {});
    socket.end(request, 'latin1');
  });
}

const get = (headers: string) => `GET /api/v1/users/me HTTP/1.1\r\nHost: localhost\r\n${headers}Connection: close\r\n\r\n`;

async function expectHealthy(): Promise<void> {
  const res = await fetch(`${server.url}/health`);
  expect(res.status).toBe(200);
  // And a real credential still works: the abuse cost nobody else anything.
  const me = await fetch(`${server.url}/api/v1/users/me`, { headers: { authorization: `Bearer ${token}` } });
  expect(me.status).toBe(200);
}

describe('header abuse on a real listener', () => {
  it('answers an oversized Authorization header with 401 or 431, whatever its size', async () => {
    for (const length of [4096, 4097, 8192, 16_000, 16_384, 20_000, 65_536, 1_048_576]) {
      const status = await rawStatus(get(`Authorization: Bearer ${'a'.repeat(length)}\r\n`));
      // Up to Bun's 16 KiB header limit the app answers 401; past it, Bun's parser answers 431 itself.
      expect([401, 431]).toContain(status);
    }
    await expectHealthy();
  });

  it('answers a flood of headers with 401 or 431', async () => {
    for (const count of [50, 100, 200, 1000, 10_000]) {
      let headers = '';
      for (let i = 0; i < count; i++) headers += `X-Filler-${i}: ${'v'.repeat(20)}\r\n`;
      expect([401, 431]).toContain(await rawStatus(get(headers)));
    }
    // Many copies of the one header that matters, one of them good: still no way in.
    expect(await rawStatus(get(`Authorization: Bearer ${token}\r\n${'Authorization: Bearer x\r\n'.repeat(50)}`))).toBe(401);
    await expectHealthy();
  });

  it('answers bytes that do not belong in a header with 400 or 401', async () => {
    for (const value of ['Bearer a\u0000b', 'Bearer a\rb', 'Bearer \u00ff\u00fe\u00e9', `Bearer\t${'t'.repeat(10)}`, 'Bearer \u0001\u007f']) {
      expect([400, 401]).toContain(await rawStatus(get(`Authorization: ${value}\r\n`)));
    }
    await expectHealthy();
  });

  it('answers 401 to bearer values of every length, in every credential shape', async () => {
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.';
    const lengths = [...Array.from({ length: 700 }, (_, i) => i), ...Array.from({ length: 40 }, (_, i) => 700 + i * 397)];
    const statuses = new Map<number, number>();
    for (const length of lengths) {
      const random = Array.from({ length }, (_, i) => alphabet[(i * 7919 + length) % alphabet.length]).join('');
      const hex = Array.from({ length }, (_, i) => '0123456789abcdef'[(i * 31 + length) % 16]).join('');
      const jwtLike = `${random.slice(0, length / 3)}.${random.slice(length / 3, (2 * length) / 3)}.${random.slice((2 * length) / 3)}`;
      for (const credential of [random, `exp_k1_${hex}`, jwtLike]) {
        const res = await fetch(`${server.url}/api/v1/users/me`, { headers: { authorization: `Bearer ${credential}` } });
        await res.arrayBuffer();
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      }
    }
    expect([...statuses.keys()]).toEqual([401]);
    await expectHealthy();
  }, 60_000);
});
