/** Liveness and reconnection: heartbeats, death by silence, the grace hold, resume tokens, clean closes. */
import { afterEach, describe, expect, it } from 'bun:test';
import { ManualClock } from '../../src/lib/clock.ts';
import { startTunnelServer, type TunnelServerOptions, type TunnelTestServer } from '../helpers/tunnel.ts';

let server: TunnelTestServer | undefined;
afterEach(async () => {
  if (server) {
    expect(server.errorLogs()).toEqual([]);
    await server.stop();
  }
  server = undefined;
});

const start = async (options: TunnelServerOptions) => (server = await startTunnelServer(options));

const visitJson = async (s: TunnelTestServer, host: string) => {
  const res = await s.visit(host, '/', { headers: { accept: 'application/json' } });
  return { status: res.status, code: res.headers.get('x-expose-error'), retryAfter: res.headers.get('retry-after'), body: await res.text() };
};

describe('heartbeats', () => {
  it('sends a Heartbeat every heartbeatMs to an authenticated client', async () => {
    const HEARTBEAT_MS = 80;
    const s = await start({ tunnel: { heartbeatMs: HEARTBEAT_MS, deadAfterMs: 60_000 } });
    const user = await s.newUser();
    const client = await s.connect();
    await client.auth(user.key);
    const beats = () => client.received.filter((r) => r.kind === 'control' && r.message.type === 'Heartbeat');
    await client.until(() => beats().length >= 7, '7 heartbeats');
    const times = beats().map((r) => r.atMs);
    const gaps = times.slice(1).map((t, i) => t - times[i]!).sort((a, b) => a - b);
    const median = gaps[Math.floor(gaps.length / 2)]!;
    expect(median).toBeGreaterThan(HEARTBEAT_MS * 0.8);
    expect(median).toBeLessThan(HEARTBEAT_MS * 1.3);
    // Every gap, even on a loaded machine, stays well short of two intervals.
    for (const gap of gaps) expect(gap).toBeLessThan(HEARTBEAT_MS * 2);
    client.close();
  });

  it('is never silent much longer than heartbeatMs, even when other traffic moved the heartbeat off its tick', async () => {
    // The production ratio: heartbeat 30 s, peer dead after 45 s. Scaled to 200 ms / 300 ms.
    const HEARTBEAT_MS = 200;
    const s = await start({ tunnel: { heartbeatMs: HEARTBEAT_MS, deadAfterMs: 300 } });
    const user = await s.newUser();
    const { client } = await s.tunnel(user.key, 'beat');
    client.serve(() => ({ status: 200, body: '' }));
    client.answerHeartbeats = true;
    const heartbeatAfter = (sinceMs: number) =>
      client.until(() => client.received.find((r) => r.atMs > sinceMs && r.kind === 'control' && r.message.type === 'Heartbeat'), 'a heartbeat');
    const silences: number[] = [];
    let since = 0;
    for (let round = 0; round < 3; round++) {
      // Right after a heartbeat, make the server send something else (StreamOpen and the request's FIN)...
      since = (await heartbeatAfter(since)).atMs;
      await (await s.visit('beat.expose.test', `/r${round}`)).text();
      // ...then measure how long the server stays silent after that.
      const lastFromServer = client.received.at(-1)!.atMs;
      since = (await heartbeatAfter(lastFromServer)).atMs;
      silences.push(since - lastFromServer);
    }
    // The peer cuts at 1.5 heartbeats of silence; a gap near that is a death sentence on a slow link.
    // (A tick of deadAfterMs / 3 gave ~1.45 here; a tenth gives ~1.1.)
    for (const silence of silences) expect(silence).toBeLessThan(HEARTBEAT_MS * 1.3);
  });

  it('sends no Heartbeat before authentication', async () => {
    const s = await start({ tunnel: { heartbeatMs: 20, deadAfterMs: 60_000, authTimeoutMs: 150 } });
    const client = await s.connect();
    expect((await client.waitClosed()).code).toBe(4008);
    expect(client.all('Heartbeat')).toEqual([]);
  });

  it('keeps a client that sends only heartbeats alive past deadAfterMs', async () => {
    const s = await start({ tunnel: { heartbeatMs: 20, deadAfterMs: 100 } });
    const user = await s.newUser();
    const client = await s.connect();
    await client.auth(user.key);
    // Answer each of the server's heartbeats with one of ours, for well over deadAfterMs.
    let answered = 0;
    await client.until(() => {
      while (answered < client.all('Heartbeat').length) {
        client.send({ type: 'Heartbeat', data: {} });
        answered++;
      }
      return answered >= 15 || client.closeInfo;
    }, '15 heartbeats');
    expect(client.closeInfo).toBeUndefined();
    expect(client.isOpen).toBe(true);
    client.close();
  });
});

describe('a client that goes silent', () => {
  it('is cut after deadAfterMs; its subdomain is held: 503 tunnel_reconnecting with Retry-After 2, subdomain_taken for others, back at once with the resume token', async () => {
    const DEAD_AFTER_MS = 150;
    const s = await start({ tunnel: { heartbeatMs: 30, deadAfterMs: DEAD_AFTER_MS, graceMs: 60_000 } });
    const [owner, other] = await Promise.all([s.newUser(), s.newUser()]);
    const { client, ready } = await s.tunnel(owner.key, 'sleepy');
    const lastSent = performance.now();
    const closed = await client.waitClosed(5000);
    expect(closed.atMs - lastSent).toBeGreaterThanOrEqual(DEAD_AFTER_MS - 10);
    expect(closed.atMs - lastSent).toBeLessThan(DEAD_AFTER_MS + 200);
    expect(closed.code).not.toBe(1000);

    const held = await visitJson(s, 'sleepy.expose.test');
    expect(held).toMatchObject({ status: 503, code: 'tunnel_reconnecting', retryAfter: '2' });
    expect(JSON.parse(held.body)).toEqual({ error: 'tunnel_reconnecting', message: expect.any(String) });

    const thief = await s.connect();
    await thief.auth(other.key);
    expect((await thief.register({ subdomain: 'sleepy', local_port: 3000 })).data).toMatchObject({ error: 'subdomain_taken' });
    // Another user holding the stolen resume token gets a fresh name, never the held one.
    const stolen = await thief.register({ subdomain: null, local_port: 3000, resume_token: ready.resume_token });
    expect(stolen.type).toBe('TunnelReady');
    expect((stolen.data as { subdomain: string }).subdomain).not.toBe('sleepy');

    const back = await s.connect();
    await back.auth(owner.key);
    const resumed = await back.register({ subdomain: null, local_port: 3000, resume_token: ready.resume_token });
    expect(resumed.type === 'TunnelReady' && resumed.data.subdomain).toBe('sleepy');
    back.serve(() => ({ status: 200, body: 'back again' }));
    expect(await (await s.visit('sleepy.expose.test')).text()).toBe('back again');
  });

  it('gives the held name back at once to the same user asking for it by name with another key', async () => {
    const s = await start({ tunnel: { heartbeatMs: 30, deadAfterMs: 100, graceMs: 60_000 } });
    const owner = await s.newUser();
    const { client } = await s.tunnel(owner.key, 'by-name');
    await client.waitClosed(5000);
    expect((await visitJson(s, 'by-name.expose.test')).code).toBe('tunnel_reconnecting');
    const second = await s.newKey(owner.token);
    const { ready } = await s.tunnel(second.key, 'by-name');
    expect(ready.subdomain).toBe('by-name');
  });
});

describe('the grace time', () => {
  const GRACE_MS = 30_000;

  it('holds a dropped subdomain for graceMs, then answers 404 and lets anyone take it', async () => {
    const clock = new ManualClock(Date.now());
    const s = await start({ clock, tunnel: { graceMs: GRACE_MS } });
    const [owner, other] = await Promise.all([s.newUser(), s.newUser()]);
    const { client } = await s.tunnel(owner.key, 'graceful');
    client.terminate();
    // The server notices the dropped TCP connection by itself; its log line is the event to wait for.
    await s.untilLog((e) => e.msg === 'tunnel closed' && e.subdomain === 'graceful', 'the drop of graceful');
    const probe = await s.connect();
    await probe.auth(other.key);
    expect(await visitJson(s, 'graceful.expose.test')).toMatchObject({ status: 503, code: 'tunnel_reconnecting', retryAfter: '2' });
    clock.advance(GRACE_MS - 1);
    expect((await visitJson(s, 'graceful.expose.test')).status).toBe(503);
    expect((await probe.register({ subdomain: 'graceful', local_port: 3000 })).data).toMatchObject({ error: 'subdomain_taken' });
    clock.advance(1);
    expect(await visitJson(s, 'graceful.expose.test')).toMatchObject({ status: 404, code: 'tunnel_not_found' });
    const taken = await probe.register({ subdomain: 'graceful', local_port: 3000 });
    expect(taken.type).toBe('TunnelReady');
  });

  it('gives nothing back for a resume token whose grace has run out', async () => {
    const clock = new ManualClock(Date.now());
    const s = await start({ clock, tunnel: { graceMs: GRACE_MS } });
    const owner = await s.newUser();
    const { client, ready } = await s.tunnel(owner.key, 'expired');
    client.close(4000);
    await client.waitClosed();
    expect((await visitJson(s, 'expired.expose.test')).status).toBe(503);
    clock.advance(GRACE_MS);
    const back = await s.connect();
    await back.auth(owner.key);
    const answer = await back.register({ subdomain: null, local_port: 3000, resume_token: ready.resume_token });
    expect(answer.type === 'TunnelReady' && answer.data.subdomain).not.toBe('expired');
  });

  it('frees the subdomain at once after a clean close (1000): 404, no grace, anyone may take it', async () => {
    const s = await start({ tunnel: { graceMs: 60_000 } });
    const [owner, other] = await Promise.all([s.newUser(), s.newUser()]);
    const { client } = await s.tunnel(owner.key, 'clean');
    client.close(1000);
    await client.waitClosed();
    expect(await visitJson(s, 'clean.expose.test')).toMatchObject({ status: 404, code: 'tunnel_not_found' });
    const { ready } = await s.tunnel(other.key, 'clean');
    expect(ready.subdomain).toBe('clean');
  });

  it('ends every stream of a dropped tunnel at once: a visitor waiting for headers gets 502', async () => {
    const s = await start({ tunnel: { graceMs: 60_000 } });
    const owner = await s.newUser();
    const { client } = await s.tunnel(owner.key, 'dropper');
    client.serve(() => undefined);
    const waiting = s.visit('dropper.expose.test', '/wait', { headers: { accept: 'application/json' } });
    await client.stream((o) => o.path === '/wait');
    client.terminate();
    const res = await waiting;
    expect(res.status).toBe(502);
    expect(res.headers.get('x-expose-error')).toBe('tunnel_error');
  });

  it('resumes by token while the old connection still looks alive (half-open): the old one is replaced, the name kept', async () => {
    const s = await start({ tunnel: { graceMs: 60_000 } });
    const owner = await s.newUser();
    for (let round = 0; round < 5; round++) {
      const old = await s.tunnel(owner.key, `half-open-${round}`);
      const fresh = await s.connect();
      await fresh.auth(owner.key);
      const answer = await fresh.register({ subdomain: null, local_port: 3000, resume_token: old.ready.resume_token });
      expect(answer.type === 'TunnelReady' && answer.data.subdomain).toBe(`half-open-${round}`);
      expect((await old.client.waitClosed()).code).toBe(4009);
      fresh.close();
    }
  });

  it('keeps the name through rapid drop-and-resume cycles', async () => {
    const s = await start({ tunnel: { graceMs: 60_000 } });
    const owner = await s.newUser();
    let { client, ready } = await s.tunnel(owner.key, 'bouncy');
    for (let round = 0; round < 10; round++) {
      client.terminate();
      const next = await s.connect();
      await next.auth(owner.key);
      const answer = await next.register({ subdomain: 'bouncy', local_port: 3000, resume_token: ready.resume_token });
      expect(answer.type).toBe('TunnelReady');
      client = next;
      ready = answer.data as typeof ready;
      client.serve(() => ({ status: 200, body: `round ${round}` }));
      expect(await (await s.visit('bouncy.expose.test')).text()).toBe(`round ${round}`);
    }
  });
});
