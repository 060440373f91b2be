/** Revocation (key or user gone → GoAway revoked, 4001, no grace), the tunnels API (list, one, close), and shutdown. */
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { GOOD_PASSWORD } from '../helpers/app.ts';
import { type ScriptedClient, secondConnection, startTunnelServer, type TestUser, type TunnelTestServer } from '../helpers/tunnel.ts';

/** The contract's bound: a revoked credential's connections close within this. */
const REVOCATION_BOUND_MS = 1000;

/** Waits for GoAway `reason` then the close, and returns how long after `sinceMs` the close came. */
async function expectGoAway(client: ScriptedClient, reason: string, code: number, sinceMs: number): Promise<number> {
  expect(await client.next('GoAway', () => true, 2 * REVOCATION_BOUND_MS)).toEqual({ reason });
  const closed = await client.waitClosed(2 * REVOCATION_BOUND_MS);
  expect(closed.code).toBe(code);
  return closed.atMs - sinceMs;
}

describe('revocation', () => {
  let server: TunnelTestServer;
  const measured: number[] = [];

  beforeAll(async () => {
    // revocationCheckMs left at its production value: this measures the real bound.
    server = await startTunnelServer({ fileDb: true, tunnel: { graceMs: 60_000 } });
  });
  afterAll(async () => {
    expect(server.errorLogs()).toEqual([]);
    await server.stop();
    // Printed so the lead can quote it; the assertion is per case.
    console.log(`revocation to close: max ${Math.max(...measured).toFixed(0)} ms over ${measured.length} cases`);
  });

  const expectGone = async (subdomain: string) => {
    const res = await server.visit(`${subdomain}.expose.test`, '/', { headers: { accept: 'application/json' } });
    expect(res.status).toBe(404);
    expect(res.headers.get('x-expose-error')).toBe('tunnel_not_found');
  };

  it('closes the connection of a key deleted through the API within 1 s (GoAway revoked, 4001), with no grace, five times over', async () => {
    const user = await server.newUser();
    for (let round = 0; round < 5; round++) {
      const { key, keyId } = await server.newKey(user.token);
      const { client } = await server.tunnel(key, `revoked-${round}`);
      const res = await server.api('DELETE', `/api/v1/api-keys/${keyId}`, { credential: user.token });
      expect(res.status).toBe(204);
      const took = await expectGoAway(client, 'revoked', 4001, performance.now());
      measured.push(took);
      expect(took).toBeLessThan(REVOCATION_BOUND_MS);
      await expectGone(`revoked-${round}`);
    }
  });

  it('closes every connection of the key, registered or not, and leaves connections of other keys alone', async () => {
    const user = await server.newUser();
    const other = await server.newKey(user.token);
    const registered = await server.tunnel(user.key, 'doomed-key');
    const unregistered = await server.connect();
    expect((await unregistered.auth(user.key)).success).toBe(true);
    const survivor = await server.tunnel(other.key, 'other-key');
    survivor.client.serve(() => ({ status: 200, body: 'alive' }));
    const started = performance.now();
    expect((await server.api('DELETE', `/api/v1/api-keys/${user.keyId}`, { credential: user.token })).status).toBe(204);
    measured.push(await expectGoAway(registered.client, 'revoked', 4001, started));
    measured.push(await expectGoAway(unregistered, 'revoked', 4001, started));
    expect(survivor.client.isOpen).toBe(true);
    expect(await (await server.visit('other-key.expose.test')).text()).toBe('alive');
    // The revoked key cannot come back.
    const retry = await server.connect();
    expect((await retry.auth(user.key)).error).toBe('unauthorized');
  });

  it('answers 502 to a visitor waiting for headers when the key is revoked', async () => {
    const user = await server.newUser();
    const { client } = await server.tunnel(user.key, 'revoked-waiting');
    client.serve(() => undefined);
    const waiting = server.visit('revoked-waiting.expose.test', '/slow', { headers: { accept: 'application/json' } });
    await client.stream((o) => o.path === '/slow');
    await server.api('DELETE', `/api/v1/api-keys/${user.keyId}`, { credential: user.token });
    const res = await waiting;
    expect(res.status).toBe(502);
    expect(res.headers.get('x-expose-error')).toBe('tunnel_error');
  });

  it('cuts a response under way when the key is revoked', async () => {
    const user = await server.newUser();
    const { client } = await server.tunnel(user.key, 'revoked-download');
    client.serve((request) => {
      void client.respond(request.stream.id, { status: 200, body: 'first part of a long download', noFin: true });
      return undefined;
    });
    const res = await server.visit('revoked-download.expose.test', '/download');
    const reader = res.body!.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toBe('first part of a long download');
    const started = performance.now();
    await server.api('DELETE', `/api/v1/api-keys/${user.keyId}`, { credential: user.token });
    expect(reader.read()).rejects.toThrow();
    measured.push(await expectGoAway(client, 'revoked', 4001, started));
  });

  const sqlCases: [string, (sqlite: ReturnType<typeof secondConnection>, user: TestUser) => void][] = [
    ['disabled', (sqlite, user) => sqlite.run('UPDATE users SET disabled_at = ? WHERE id = ?', [Math.floor(Date.now() / 1000), user.userId])],
    ['deleted (with foreign keys on, the keys cascade)', (sqlite, user) => {
      sqlite.run('PRAGMA foreign_keys = ON');
      sqlite.run('DELETE FROM users WHERE id = ?', [user.userId]);
    }],
    ['deleted (foreign keys off, the keys left orphaned)', (sqlite, user) => sqlite.run('DELETE FROM users WHERE id = ?', [user.userId])],
  ];
  for (const [what, act] of sqlCases) {
    it(`closes every connection of a user ${what} by SQL from a second connection within 1 s, with no grace, three times over`, async () => {
      for (let round = 0; round < 3; round++) {
        const user = await server.newUser();
        const second = await server.newKey(user.token);
        const one = await server.tunnel(user.key, `sql-${round}-a`);
        const two = await server.tunnel(second.key, `sql-${round}-b`);
        const sqlite = secondConnection(server.dbPath!);
        act(sqlite, user);
        sqlite.close();
        const started = performance.now();
        for (const client of [one.client, two.client]) {
          const took = await expectGoAway(client, 'revoked', 4001, started);
          measured.push(took);
          expect(took).toBeLessThan(REVOCATION_BOUND_MS);
        }
        await expectGone(`sql-${round}-a`);
        await expectGone(`sql-${round}-b`);
      }
    });
  }

  it('ends the grace hold of a dropped tunnel whose user is then disabled: 503 before, 404 within 1 s, and the name is free', async () => {
    const user = await server.newUser();
    const { client } = await server.tunnel(user.key, 'held-then-revoked');
    client.terminate();
    await server.untilLog((e) => e.msg === 'tunnel closed' && e.subdomain === 'held-then-revoked', 'the drop');
    expect((await server.visit('held-then-revoked.expose.test')).status).toBe(503);
    const sqlite = secondConnection(server.dbPath!);
    sqlite.run('UPDATE users SET disabled_at = 1 WHERE id = ?', [user.userId]);
    sqlite.close();
    const started = performance.now();
    let status = 503;
    while (status === 503 && performance.now() - started < 2 * REVOCATION_BOUND_MS) {
      status = (await server.visit('held-then-revoked.expose.test')).status;
      if (status === 503) await Bun.sleep(20);
    }
    const took = performance.now() - started;
    measured.push(took);
    expect(status).toBe(404);
    expect(took).toBeLessThan(REVOCATION_BOUND_MS);
    // Another user may have the name at once.
    const other = await server.newUser();
    const { ready } = await server.tunnel(other.key, 'held-then-revoked');
    expect(ready.subdomain).toBe('held-then-revoked');
  });

  it("keeps the grace hold of one key's dropped tunnel when another key of the same user is revoked", async () => {
    const user = await server.newUser();
    const other = await server.newKey(user.token);
    const { client } = await server.tunnel(user.key, 'held-kept');
    client.terminate();
    await server.untilLog((e) => e.msg === 'tunnel closed' && e.subdomain === 'held-kept', 'the drop');
    const survivor = await server.tunnel(other.key, 'held-sibling');
    expect((await server.api('DELETE', `/api/v1/api-keys/${other.keyId}`, { credential: user.token })).status).toBe(204);
    await expectGoAway(survivor.client, 'revoked', 4001, performance.now());
    expect((await server.visit('held-kept.expose.test')).status).toBe(503);
  });

  it('keeps keys and tunnels when the user changes their password (only JWT sessions end)', async () => {
    const user = await server.newUser();
    const { client } = await server.tunnel(user.key, 'password-change');
    client.serve(() => ({ status: 200, body: 'still here' }));
    const res = await server.api('PUT', '/api/v1/users/me/password', {
      credential: user.token,
      json: { current_password: GOOD_PASSWORD, new_password: `${GOOD_PASSWORD}-new` },
    });
    expect(res.status).toBe(200);
    // Run the revocation check now rather than wait for its timer: it must find the key still live.
    server.running.relay.checkRevocations();
    expect((await server.api('GET', '/api/v1/tunnels', { credential: user.key })).status).toBe(200);
    expect(await (await server.visit('password-change.expose.test')).text()).toBe('still here');
    expect(client.all('GoAway')).toEqual([]);
    expect(client.isOpen).toBe(true);
  });
});

describe('the tunnels API', () => {
  let server: TunnelTestServer;
  let alice: TestUser;
  let bob: TestUser;

  beforeAll(async () => {
    server = await startTunnelServer();
    [alice, bob] = await Promise.all([server.newUser(), server.newUser()]);
  });
  afterAll(() => server.stop());

  type TunnelView = { id: string; subdomain: string; public_url: string; local_port: number; api_key_id: string; connected_at: string; bytes_in: number; bytes_out: number; request_count: number; active_streams: number };
  const list = async (credential: string) => (await (await server.api('GET', '/api/v1/tunnels', { credential })).json()) as TunnelView[];

  it("lists the caller's live tunnels, newest first, with the documented fields, for a JWT or an API key", async () => {
    // Registered back to back: several land in the same millisecond, so the order must not rest on the clock alone.
    const opened = [];
    for (let i = 1; i <= 5; i++) opened.push(await server.tunnel(alice.key, `listed-${i}`));
    await server.tunnel(bob.key, 'bobs-own');
    const newer = opened.at(-1)!;
    for (const credential of [alice.token, alice.key]) {
      const tunnels = await list(credential);
      expect(tunnels.map((t) => t.subdomain)).toEqual(['listed-5', 'listed-4', 'listed-3', 'listed-2', 'listed-1']);
      expect(tunnels[0]).toEqual({
        id: newer.ready.tunnel_id!,
        subdomain: 'listed-5',
        public_url: `http://listed-5.expose.test:${server.port}`,
        local_port: 3000,
        api_key_id: alice.keyId,
        connected_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/),
        bytes_in: 0,
        bytes_out: 0,
        request_count: 0,
        active_streams: 0,
      });
      expect(Math.abs(Date.parse(tunnels[0]!.connected_at) - Date.now())).toBeLessThan(5000);
    }
    for (const { client } of opened) client.close();
    await Promise.all(opened.map(({ client }) => client.waitClosed()));
    expect(await list(alice.token)).toEqual([]);
  });

  it('counts bytes in and out, requests (whatever their answer) and streams in flight', async () => {
    const { client, ready } = await server.tunnel(alice.key, 'metered');
    client.serve(async (request) => {
      if (request.path === '/hold') return undefined;
      if (request.path === '/fail') return { streamError: 'connection_refused' };
      await request.body();
      return { status: 200, body: 'x'.repeat(1000) };
    });
    const one = async (path: string) => {
      const res = await server.api('GET', `/api/v1/tunnels/${ready.tunnel_id}`, { credential: alice.token });
      expect(res.status).toBe(200);
      return (await res.json()) as TunnelView;
    };
    await (await server.visit('metered.expose.test', '/up', { method: 'POST', body: 'y'.repeat(5000) })).text();
    await (await server.visit('metered.expose.test', '/fail')).text();
    const held = server.visit('metered.expose.test', '/hold');
    const stream = await client.stream((o) => o.path === '/hold');
    const during = await one('/');
    expect(during).toMatchObject({ bytes_in: 5000, bytes_out: 1000, request_count: 3, active_streams: 1 });
    await client.respond(stream.id, { status: 200, body: 'z'.repeat(500) });
    await (await held).text();
    const after = await one('/');
    expect(after).toMatchObject({ bytes_in: 5000, bytes_out: 1500, request_count: 3, active_streams: 0 });
    client.close();
  });

  it('counts bytes_out of a download while it is under way, not only once it ends', async () => {
    const { client, ready } = await server.tunnel(alice.key, 'metered-live');
    client.serve(() => ({ status: 200, body: 'w'.repeat(20_000), noFin: true }));
    const res = await server.visit('metered-live.expose.test', '/long');
    const reader = res.body!.getReader();
    let received = 0;
    while (received < 20_000) received += (await reader.read()).value!.byteLength;
    const view = (await (await server.api('GET', `/api/v1/tunnels/${ready.tunnel_id}`, { credential: alice.token })).json()) as TunnelView;
    expect(view).toMatchObject({ bytes_out: 20_000, active_streams: 1 });
    client.close();
  });

  it("answers 404 \"Tunnel not found\" for another user's tunnel, to GET and DELETE, and leaves it running", async () => {
    const { client, ready } = await server.tunnel(alice.key, 'not-yours');
    client.serve(() => ({ status: 200, body: 'alice' }));
    for (const method of ['GET', 'DELETE']) {
      const res = await server.api(method, `/api/v1/tunnels/${ready.tunnel_id}`, { credential: bob.token });
      expect(res.status).toBe(404);
      expect(await res.json()).toEqual({ error: 'not_found', message: 'Tunnel not found' });
    }
    for (const id of ['00000000-0000-0000-0000-000000000000', 'not-a-uuid']) {
      expect((await server.api('GET', `/api/v1/tunnels/${id}`, { credential: alice.token })).status).toBe(404);
    }
    expect(await (await server.visit('not-yours.expose.test')).text()).toBe('alice');
    expect(client.isOpen).toBe(true);
    client.close();
  });

  it('closes a tunnel on DELETE /api/v1/tunnels/{id}: 204, GoAway closed_by_owner, close 4010, 404 at once', async () => {
    for (const credential of [alice.token, alice.key]) {
      const { client, ready } = await server.tunnel(alice.key, 'owner-closes');
      const started = performance.now();
      const res = await server.api('DELETE', `/api/v1/tunnels/${ready.tunnel_id}`, { credential });
      expect(res.status).toBe(204);
      expect(await expectGoAway(client, 'closed_by_owner', 4010, started)).toBeLessThan(REVOCATION_BOUND_MS);
      const visit = await server.visit('owner-closes.expose.test', '/', { headers: { accept: 'application/json' } });
      expect(visit.status).toBe(404);
      expect((await server.api('GET', `/api/v1/tunnels/${ready.tunnel_id}`, { credential })).status).toBe(404);
    }
  });

  it('refuses the tunnels API without a credential', async () => {
    expect((await server.api('GET', '/api/v1/tunnels')).status).toBe(401);
    expect((await server.api('DELETE', '/api/v1/tunnels/00000000-0000-0000-0000-000000000000')).status).toBe(401);
  });
});

describe('shutdown', () => {
  it('sends GoAway shutdown and closes 1001 every connection, registered or not', async () => {
    const server = await startTunnelServer({ tunnel: { authTimeoutMs: 60_000 } });
    const user = await server.newUser();
    const registered = await server.tunnel(user.key, 'shutting');
    const authed = await server.connect();
    await authed.auth(user.key);
    const fresh = await server.connect();
    server.running.relay.shutdown();
    for (const client of [registered.client, authed, fresh]) {
      expect(await client.next('GoAway')).toEqual({ reason: 'shutdown' });
      expect((await client.waitClosed()).code).toBe(1001);
    }
    expect(server.running.relay.sessionCount).toBe(0);
    await server.stop();
  });
});
