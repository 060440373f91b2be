/**
 * A client that drops without a word, with real processes: killed with SIGKILL (no close frame, no
 * GoAway, just a socket the kernel closes) or frozen with SIGSTOP (a half-open connection that only the
 * heartbeat notices). Its subdomain is held for the grace time: visitors are told to retry, other users
 * cannot take it, its owner gets it back.
 */
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { cleanEnv, cleanUp, runClient } from '../client/process.ts';
import { type E2EServer, type E2EUser, generatedBody, startClient, startE2EServer, until, withTimeout } from './harness.ts';

/** EXPOSE_SUBDOMAIN_GRACE for this server, in seconds: long enough to look at, short enough to outwait. */
const GRACE_SECONDS = 3;
const GRACE_MS = GRACE_SECONDS * 1000;
/** Heartbeats every 200 ms and death after 600 ms of silence, on both sides (test-only settings). */
const INTERVALS = { EXPOSE_HEARTBEAT_MS: '200', EXPOSE_DEAD_AFTER_MS: '600' };

let origin: ReturnType<typeof Bun.serve>;
let server: E2EServer;
let owner: E2EUser;
let stranger: E2EUser;

beforeAll(async () => {
  origin = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    idleTimeout: 0,
    fetch(req) {
      const path = new URL(req.url).pathname;
      // A download that never ends by itself.
      if (path === '/download') return new Response(generatedBody(Number.POSITIVE_INFINITY).stream);
      return Response.json({ path });
    },
  });
  server = await startE2EServer({ EXPOSE_SUBDOMAIN_GRACE: String(GRACE_SECONDS), ...INTERVALS });
  [owner, stranger] = await Promise.all([server.newUser(), server.newUser()]);
});

afterAll(async () => {
  cleanUp();
  origin?.stop(true);
  expect(await server?.stop()).toBe('');
});

const asJson = { headers: { accept: 'application/json' } };

/**
 * Starts the owner's client on `subdomain`, checks it serves, and kills it with SIGKILL in the middle of
 * a visitor's download, which must be cut with it; resolves with when the client died.
 */
async function crashOwnerClient(subdomain: string): Promise<number> {
  const client = await startClient(server, owner.key, subdomain, origin.port!, INTERVALS);
  expect((await server.visit(subdomain, '/before')).status).toBe(200);
  const download = await server.visit(subdomain, '/download');
  const reader = download.body!.getReader();
  expect((await reader.read()).value!.byteLength).toBeGreaterThan(0);
  const cut = (async () => {
    try {
      while (!(await reader.read()).done);
      return 'ended';
    } catch {
      return 'cut';
    }
  })();
  // Taken before the kill: the server cannot notice a drop before it happens, so a hold measured from
  // here is never longer than the one the server counts.
  const killedAtMs = performance.now();
  client.child.kill('SIGKILL');
  await client.child.exited;
  expect(client.child.signalCode).toBe('SIGKILL');
  // The body never ends by itself: it ends (broken) because the tunnel's client dropped.
  expect(await withTimeout(cut, 'the download to be cut')).toBe('cut');
  return killedAtMs;
}

/**
 * Polls what a visitor gets until the server itself answers for the tunnel (it noticed the drop). A
 * request still relayed to a client that is gone gets 502 when the server notices (its stream ends
 * with the connection); that is a request in flight at the drop, so polling goes on.
 */
async function untilDropNoticed(subdomain: string): Promise<Response> {
  let last: Response | undefined;
  await until(async () => {
    last = await server.visit(subdomain, '/probe', asJson);
    return last.status !== 200 && last.status !== 502;
  }, `the server to answer for ${subdomain} itself`);
  return last!;
}

describe('a client killed with SIGKILL', () => {
  it('cuts its downloads and leaves its subdomain held: 503 tunnel_reconnecting with Retry-After 2, subdomain_taken for another user, back at once for its restarted client', async () => {
    const killedAtMs = await crashOwnerClient('phoenix');

    const held = await untilDropNoticed('phoenix');
    expect(held.status).toBe(503);
    expect(held.headers.get('retry-after')).toBe('2');
    expect(held.headers.get('x-expose-error')).toBe('tunnel_reconnecting');
    expect(await held.json()).toMatchObject({ error: 'tunnel_reconnecting' });

    // Another user's client asking for the name is refused at once, and says why.
    const intruder = await runClient(['http', String(origin.port), '--subdomain', 'phoenix', '--json'], {
      env: cleanEnv({ EXPOSE_SERVER: server.url, EXPOSE_API_KEY: stranger.key, ...INTERVALS }),
    });
    expect(intruder.exitCode).toBe(1);
    expect(intruder.stderr).toContain('subdomain_taken');
    expect((await server.visit('phoenix', '/still-held', asJson)).status).toBe(503);

    // The owner's client, restarted with the same key and --subdomain (a new process: no resume token).
    const restarted = await startClient(server, owner.key, 'phoenix', origin.port!, INTERVALS);
    const backAfterMs = performance.now() - killedAtMs;
    expect(restarted.ready.subdomain).toBe('phoenix');
    // Back within the grace time, so by the hold, not because the hold ran out.
    expect(backAfterMs).toBeLessThan(GRACE_MS);
    console.log(`[e2e] SIGKILL: the restarted client had its subdomain back ${(backAfterMs / 1000).toFixed(2)} s after the kill`);
    const res = await server.visit('phoenix', '/again');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ path: '/again' });
  });

  it('frees its subdomain once the grace time has passed without it: 404 tunnel_not_found, then anyone may take it', async () => {
    const killedAtMs = await crashOwnerClient('ember');
    expect((await untilDropNoticed('ember')).status).toBe(503);

    const freed = await (async () => {
      let last: Response | undefined;
      await until(async () => {
        last = await server.visit('ember', '/probe', asJson);
        return last.status !== 503;
      }, 'the hold on ember to end', GRACE_MS + 5000, 50);
      return last!;
    })();
    const freedAfterMs = performance.now() - killedAtMs;
    console.log(`[e2e] SIGKILL: ember answered 404 ${(freedAfterMs / 1000).toFixed(2)} s after the kill (grace ${GRACE_SECONDS} s)`);
    expect(freed.status).toBe(404);
    expect(freed.headers.get('x-expose-error')).toBe('tunnel_not_found');
    // Held for the whole grace time, counted from when the server noticed (after the kill).
    expect(freedAfterMs).toBeGreaterThanOrEqual(GRACE_MS);

    const newcomer = await startClient(server, stranger.key, 'ember', origin.port!, INTERVALS);
    expect(newcomer.ready.subdomain).toBe('ember');
    expect((await server.visit('ember', '/new-owner')).status).toBe(200);
  });
});

describe('a client frozen with SIGSTOP (its connection open but silent)', () => {
  it('is declared dead by the heartbeat, its subdomain held (503), and on SIGCONT it reconnects and gets the same subdomain back', async () => {
    const client = await startClient(server, owner.key, 'frozen', origin.port!, INTERVALS);
    expect((await server.visit('frozen', '/before')).status).toBe(200);
    const readiesBefore = client.stdout.lines.length;
    client.child.kill('SIGSTOP');
    try {
      const stoppedAtMs = performance.now();
      const held = await untilDropNoticed('frozen');
      console.log(`[e2e] SIGSTOP: the server held the subdomain ${Math.round(performance.now() - stoppedAtMs)} ms after the client froze (dead after ${INTERVALS.EXPOSE_DEAD_AFTER_MS} ms of silence)`);
      expect(held.status).toBe(503);
      expect(held.headers.get('x-expose-error')).toBe('tunnel_reconnecting');
    } finally {
      client.child.kill('SIGCONT');
    }
    // Woken, it finds its connection gone, reconnects and asks for the name with its resume token.
    const again = await client.stdout.event('ready', {}, undefined, readiesBefore);
    expect(again.subdomain).toBe('frozen');
    expect(client.child.exitCode).toBeNull();
    const res = await server.visit('frozen', '/after');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ path: '/after' });
  });
});
