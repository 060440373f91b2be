/**
 * How long a passed-through WebSocket lives, with real processes and the tunnel's heartbeat scaled
 * down (every 100 ms, dead after 400 ms of silence, on both sides): a quiet socket has no idle
 * timeout of ours, however many heartbeat periods it stays silent, while a client that freezes is
 * still noticed by the heartbeat and its visitors' sockets are closed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { join } from 'node:path';
import { cleanUp } from '../client/process.ts';
import {
  type E2EServer,
  type E2EUser,
  FIXTURES,
  type LocalService,
  startClient,
  startE2EServer,
  startLocalService,
  stopLocalServices,
  VisitorSocket,
  withTimeout,
} from './harness.ts';

const HEARTBEAT_MS = 100;
const DEAD_AFTER_MS = 400;
/** Test-only settings, read by the server and the client alike. */
const INTERVALS = { EXPOSE_HEARTBEAT_MS: String(HEARTBEAT_MS), EXPOSE_DEAD_AFTER_MS: String(DEAD_AFTER_MS) };
/** How long the socket stays silent: 30 heartbeat periods, 7.5 times the dead-after time. */
const QUIET_MS = 3_000;
/** Time allowed past DEAD_AFTER_MS for the server to notice and close the visitor's socket, on a loaded machine. */
const NOTICE_MARGIN_MS = 1_000;

let server: E2EServer;
let user: E2EUser;
let echo: LocalService;

beforeAll(async () => {
  server = await startE2EServer(INTERVALS);
  user = await server.newUser();
  echo = await startLocalService(['node', join(FIXTURES, 'ws-echo-server.mjs')]);
});

afterAll(async () => {
  cleanUp();
  await stopLocalServices();
  expect(await server?.stop()).toBe('');
});

describe('a passed-through WebSocket over time', () => {
  it(
    `stays open through ${QUIET_MS / 1000} s of silence (${QUIET_MS / HEARTBEAT_MS} heartbeat periods) and then still carries a message`,
    async () => {
      const client = await startClient(server, user.key, 'quiet', echo.port, INTERVALS);
      const visitor = await VisitorSocket.open(server, 'quiet', '/quiet');
      expect(await visitor.roundTrip('before the silence')).toBe('before the silence');
      const before = echo.log.lines.length;
      let closedEarly = false;
      void visitor.closed.then(() => (closedEarly = true));

      // The silence is what is under test: nothing to await but time passing.
      await Bun.sleep(QUIET_MS);

      expect(closedEarly).toBe(false);
      expect(visitor.socket.readyState).toBe(WebSocket.OPEN);
      expect(await visitor.roundTrip('after the silence')).toBe('after the silence');
      // Neither side of the relay closed anything meanwhile, and the tunnel itself never dropped.
      expect(echo.log.lines.slice(before).filter((line) => line.includes('"close"'))).toEqual([]);
      expect(client.stdout.lines.filter((line) => line.includes('"Reconnecting"'))).toEqual([]);
      visitor.socket.close();
      await visitor.closed;
    },
    QUIET_MS + 20_000,
  );

  it("closes the visitor's socket as going away (1001) when the tunnel's heartbeat finds the client frozen (SIGSTOP)", async () => {
    const client = await startClient(server, user.key, 'frozen', echo.port, INTERVALS);
    const visitor = await VisitorSocket.open(server, 'frozen', '/frozen');
    expect(await visitor.roundTrip('before the freeze')).toBe('before the freeze');

    client.child.kill('SIGSTOP');
    const frozenAt = performance.now();
    try {
      const close = await withTimeout(visitor.closed, "the visitor's socket to close", DEAD_AFTER_MS + 10_000);
      const afterMs = Math.round(performance.now() - frozenAt);
      console.log(`visitor's socket closed ${afterMs} ms after SIGSTOP (code ${close.code}; dead after ${DEAD_AFTER_MS} ms, bound ${DEAD_AFTER_MS + NOTICE_MARGIN_MS} ms)`);
      expect([1001, 1011]).toContain(close.code);
      expect(afterMs).toBeLessThan(DEAD_AFTER_MS + NOTICE_MARGIN_MS);
      // Nor was it closed before the client could have been declared dead.
      expect(afterMs).toBeGreaterThanOrEqual(DEAD_AFTER_MS - HEARTBEAT_MS);
    } finally {
      client.child.kill('SIGCONT');
      client.child.kill('SIGKILL');
      await client.child.exited;
    }
  });
});
