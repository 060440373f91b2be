/** RegisterTunnel: subdomain rules, reserved and taken names, generated names, the per-user limit, replacement. */
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { isValidSubdomain } from '../../src/tunnel/protocol.ts';
import { startTunnelServer, type TestUser, type TunnelTestServer } from '../helpers/tunnel.ts';

describe('RegisterTunnel', () => {
  let server: TunnelTestServer;
  let alice: TestUser;
  let bob: TestUser;

  beforeAll(async () => {
    server = await startTunnelServer({ env: { EXPOSE_RESERVED_SUBDOMAINS: 'admin,status', EXPOSE_MAX_TUNNELS: '0' } });
    [alice, bob] = await Promise.all([server.newUser(), server.newUser()]);
  });
  afterAll(async () => {
    expect(server.errorLogs()).toEqual([]);
    await server.stop();
  });

  const authed = async (user: TestUser) => {
    const client = await server.connect();
    expect((await client.auth(user.key)).success).toBe(true);
    return client;
  };

  it('answers TunnelReady with the subdomain, public_url, tunnel id, resume token and max_streams', async () => {
    const client = await authed(alice);
    const answer = await client.register({ subdomain: 'ready-check', local_port: 8080 });
    expect(answer).toEqual({
      type: 'TunnelReady',
      data: {
        subdomain: 'ready-check',
        public_url: `http://ready-check.expose.test:${server.port}`,
        tunnel_id: expect.stringMatching(/^[0-9a-f-]{36}$/),
        resume_token: expect.any(String),
        max_streams: 256,
      },
    });
    client.close();
  });

  it('adds the window to TunnelReady when flow control is on', async () => {
    const client = await server.connect();
    await client.auth(alice.key, ['flow_control']);
    const answer = await client.register({ subdomain: 'windowed', local_port: 8080 });
    expect(answer.type === 'TunnelReady' && answer.data.window).toBe(1024 * 1024);
    client.close();
  });

  const invalid = ['ab', 'a_b', '-abc', 'abc-', 'a.bc', 'my app', 'ünï', 'a'.repeat(64), '', '<script>'];
  for (const name of invalid) {
    it(`refuses ${JSON.stringify(name)} with invalid_subdomain and keeps the connection open`, async () => {
      const client = await authed(alice);
      const answer = await client.register({ subdomain: name, local_port: 3000 });
      expect(answer).toEqual({ type: 'TunnelError', data: { error: 'invalid_subdomain', message: expect.any(String) } });
      // The connection stays open: the next attempt on it succeeds.
      const retry = await client.register({ subdomain: `retry-${crypto.randomUUID().slice(0, 8)}`, local_port: 3000 });
      expect(retry.type).toBe('TunnelReady');
      client.close();
    });
  }

  it('accepts the longest (63) and shortest (3) valid names', async () => {
    for (const name of ['a'.repeat(63), 'a1b']) {
      const client = await authed(alice);
      const answer = await client.register({ subdomain: name, local_port: 3000 });
      expect(answer.type === 'TunnelReady' && answer.data.subdomain).toBe(name);
      client.close();
    }
  });

  for (const name of ['api', 'www', 'API', 'admin', 'status']) {
    it(`refuses the reserved name ${name} with subdomain_reserved`, async () => {
      const client = await authed(alice);
      const answer = await client.register({ subdomain: name, local_port: 3000 });
      expect(answer).toEqual({ type: 'TunnelError', data: { error: 'subdomain_reserved', message: expect.any(String) } });
      expect(client.isOpen).toBe(true);
      client.close();
    });
  }

  it("refuses another user's live subdomain with subdomain_taken and leaves the owner's tunnel alone", async () => {
    const owner = await server.tunnel(alice.key, 'owned');
    owner.client.serve(() => ({ status: 200, body: 'alice' }));
    const thief = await authed(bob);
    const answer = await thief.register({ subdomain: 'owned', local_port: 3000 });
    expect(answer).toEqual({ type: 'TunnelError', data: { error: 'subdomain_taken', message: expect.any(String) } });
    expect(owner.client.isOpen).toBe(true);
    expect(await (await server.visit('owned.expose.test')).text()).toBe('alice');
    owner.client.close();
    thief.close();
  });

  it('gives exactly one of two users racing for the same name the tunnel, every time', async () => {
    for (let round = 0; round < 10; round++) {
      const name = `race-${round}`;
      const [a, b] = await Promise.all([authed(alice), authed(bob)]);
      const answers = await Promise.all([a.register({ subdomain: name, local_port: 3000 }), b.register({ subdomain: name, local_port: 3000 })]);
      expect(answers.map((x) => x.type).sort()).toEqual(['TunnelError', 'TunnelReady']);
      expect(answers.find((x) => x.type === 'TunnelError')!.data).toMatchObject({ error: 'subdomain_taken' });
      a.close();
      b.close();
    }
  });

  it('generates a readable, valid, reachable name when the subdomain is omitted or null', async () => {
    const names = new Set<string>();
    for (const subdomain of [undefined, null, undefined, null]) {
      const client = await authed(alice);
      const answer = await client.register(subdomain === undefined ? { local_port: 3000 } : { subdomain, local_port: 3000 });
      expect(answer.type).toBe('TunnelReady');
      const name = (answer.data as { subdomain: string }).subdomain;
      expect(name).toMatch(/^[a-z]+-[a-z]+-[0-9a-f]{4}$/);
      expect(isValidSubdomain(name)).toBe(true);
      client.serve(() => ({ status: 200, body: name }));
      expect(await (await server.visit(`${name}.expose.test`)).text()).toBe(name);
      names.add(name);
      client.close();
    }
    expect(names.size).toBe(4);
  });

  it('lower-cases a requested name', async () => {
    const client = await authed(alice);
    const answer = await client.register({ subdomain: 'MixedCase', local_port: 3000 });
    expect(answer.type === 'TunnelReady' && answer.data.subdomain).toBe('mixedcase');
    client.close();
  });

  it('answers a second RegisterTunnel with already_registered and keeps the first tunnel', async () => {
    const { client } = await server.tunnel(alice.key, 'first-one');
    client.serve(() => ({ status: 200, body: 'first' }));
    const again = await client.register({ subdomain: 'second-one', local_port: 3000 });
    expect(again).toEqual({ type: 'TunnelError', data: { error: 'already_registered', message: expect.any(String) } });
    const same = await client.register({ subdomain: 'first-one', local_port: 3000 });
    expect(same.data).toMatchObject({ error: 'already_registered' });
    expect(client.isOpen).toBe(true);
    expect(await (await server.visit('first-one.expose.test')).text()).toBe('first');
    expect((await server.visit('second-one.expose.test')).status).toBe(404);
    client.close();
  });

  it('replaces the same user\'s live tunnel: GoAway replaced and close 4009 to the old connection, visitors reach the new one', async () => {
    const old = await server.tunnel(alice.key, 'replace-me');
    old.client.serve(() => ({ status: 200, body: 'old' }));
    const otherKey = await server.newKey(alice.token);
    const fresh = await server.tunnel(otherKey.key, 'replace-me');
    fresh.client.serve(() => ({ status: 200, body: 'new' }));
    expect(await old.client.next('GoAway')).toEqual({ reason: 'replaced' });
    expect((await old.client.waitClosed()).code).toBe(4009);
    expect(await (await server.visit('replace-me.expose.test')).text()).toBe('new');
    // The old connection's close must not free or hold the name now owned by the new one.
    expect(await (await server.visit('replace-me.expose.test')).text()).toBe('new');
    fresh.client.close();
  });

  it('replaces again and again, each time leaving exactly one live tunnel on the name', async () => {
    let previous = (await server.tunnel(alice.key, 'churn')).client;
    for (let round = 0; round < 8; round++) {
      const next = (await server.tunnel(alice.key, 'churn')).client;
      next.serve(() => ({ status: 200, body: `round ${round}` }));
      expect((await previous.waitClosed()).code).toBe(4009);
      expect(await (await server.visit('churn.expose.test')).text()).toBe(`round ${round}`);
      previous = next;
    }
    const res = await server.api('GET', '/api/v1/tunnels', { credential: alice.key });
    expect(((await res.json()) as { subdomain: string }[]).filter((t) => t.subdomain === 'churn')).toHaveLength(1);
    previous.close();
  });
});

describe('EXPOSE_MAX_TUNNELS', () => {
  let server: TunnelTestServer;
  beforeAll(async () => {
    server = await startTunnelServer({ env: { EXPOSE_MAX_TUNNELS: '2' } });
  });
  afterAll(() => server.stop());

  it('refuses a third live tunnel with too_many_tunnels, keeps the connection open, and lets it register once one closes', async () => {
    const user = await server.newUser();
    const first = await server.tunnel(user.key, 'limit-one');
    await server.tunnel(user.key, 'limit-two');
    const third = await server.connect();
    await third.auth(user.key);
    const answer = await third.register({ subdomain: 'limit-three', local_port: 3000 });
    expect(answer).toEqual({ type: 'TunnelError', data: { error: 'too_many_tunnels', message: expect.any(String) } });
    expect(third.isOpen).toBe(true);
    first.client.close();
    await first.client.waitClosed();
    // The client sees its close completed only after the server handled it: the slot is free now.
    const retry = await third.register({ subdomain: 'limit-three', local_port: 3000 });
    expect(retry.type).toBe('TunnelReady');
  });

  it("counts per user: another user's tunnels do not count", async () => {
    const [a, b] = await Promise.all([server.newUser(), server.newUser()]);
    await server.tunnel(a.key, 'per-user-a1');
    await server.tunnel(a.key, 'per-user-a2');
    const { ready } = await server.tunnel(b.key, 'per-user-b1');
    expect(ready.subdomain).toBe('per-user-b1');
  });

  it('lets a user at the limit replace one of their own tunnels', async () => {
    const user = await server.newUser();
    await server.tunnel(user.key, 'full-one');
    const old = await server.tunnel(user.key, 'full-two');
    const fresh = await server.tunnel(user.key, 'full-two');
    expect(fresh.ready.subdomain).toBe('full-two');
    expect((await old.client.waitClosed()).code).toBe(4009);
  });
});
