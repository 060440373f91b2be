/** The control channel's authentication: Auth/AuthResult, close codes, the upgrade-time Bearer check and the auth-class rate limit. */
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { encodeFrame, FLAG_FIN, FrameKind, MAX_CONTROL_TEXT_BYTES } from '../../src/tunnel/protocol.ts';
import { rawHttp, startTunnelServer, type TestUser, type TunnelTestServer, upgradeRequest } from '../helpers/tunnel.ts';

const AUTH_TIMEOUT_MS = 150;

describe('Auth on the control channel', () => {
  let server: TunnelTestServer;
  let user: TestUser;

  beforeAll(async () => {
    server = await startTunnelServer({ tunnel: { authTimeoutMs: AUTH_TIMEOUT_MS } });
    user = await server.newUser();
  });
  afterAll(async () => {
    expect(server.errorLogs()).toEqual([]);
    await server.stop();
  });

  it('accepts a valid API key with AuthResult success and the user id, and no features unless asked', async () => {
    const client = await server.connect();
    const result = await client.auth(user.key);
    expect(result).toEqual({ success: true, user_id: user.userId, error: null, features: [] });
    expect(client.isOpen).toBe(true);
    client.close();
  });

  it('accepts flow_control when asked, and ignores features it does not know', async () => {
    const client = await server.connect();
    const result = await client.auth(user.key, ['flow_control', 'teleportation']);
    expect(result.success).toBe(true);
    expect(result.success && result.features).toEqual(['flow_control']);
    client.close();
  });

  it("stamps the key's last_used_at", async () => {
    const fresh = await server.newKey(user.token);
    const listed = async () => {
      const res = await server.api('GET', '/api/v1/api-keys', { credential: user.token });
      return ((await res.json()) as { id: string; last_used_at: string | null }[]).find((k) => k.id === fresh.keyId)!;
    };
    expect((await listed()).last_used_at).toBeNull();
    const client = await server.connect();
    expect((await client.auth(fresh.key)).success).toBe(true);
    const stamped = (await listed()).last_used_at;
    expect(stamped).not.toBeNull();
    expect(Math.abs(Date.parse(stamped!) - Date.now())).toBeLessThan(5000);
    client.close();
  });

  const refusedKeys: [string, () => Promise<string>][] = [
    ['a key with a bad checksum', async () => user.key.slice(0, -1) + (user.key.endsWith('A') ? 'B' : 'A')],
    ['an unknown well-formed key', async () => 'exp_k1_' + 'A'.repeat(user.key.length - 7)],
    ['garbage', async () => 'not a key at all'],
    ['an empty string', async () => ''],
    ['a tampered JWT', async () => user.token.slice(0, -3) + 'abc'],
    [
      'a deleted key',
      async () => {
        const doomed = await server.newKey(user.token);
        const res = await server.api('DELETE', `/api/v1/api-keys/${doomed.keyId}`, { credential: user.token });
        expect(res.status).toBe(204);
        return doomed.key;
      },
    ],
  ];
  for (const [name, credential] of refusedKeys) {
    it(`refuses ${name} with AuthResult unauthorized and close 4001`, async () => {
      const key = await credential();
      const client = await server.connect();
      const result = await client.auth(key);
      expect(result).toEqual({ success: false, user_id: null, error: 'unauthorized' });
      expect((await client.waitClosed()).code).toBe(4001);
    });
  }

  it('refuses a valid JWT with AuthResult forbidden and close 4003', async () => {
    const client = await server.connect();
    const result = await client.auth(user.token);
    expect(result).toEqual({ success: false, user_id: null, error: 'forbidden' });
    expect((await client.waitClosed()).code).toBe(4003);
  });

  it('closes with 4008 when no Auth arrives within the timeout', async () => {
    const client = await server.connect();
    const opened = performance.now();
    const closed = await client.waitClosed();
    expect(closed.code).toBe(4008);
    expect(closed.atMs - opened).toBeGreaterThanOrEqual(AUTH_TIMEOUT_MS - 20);
    expect(client.received).toEqual([]);
  });

  const beforeAuth: [string, (send: { text(t: string): void; binary(b: Uint8Array): void }) => void][] = [
    ['garbage text', (s) => s.text('hello, server')],
    ['malformed JSON', (s) => s.text('{"type": "Auth", "data": {"api_key": ')],
    ['JSON that is not an object', (s) => s.text('[1,2,3]')],
    ['an Auth without api_key', (s) => s.text('{"type":"Auth","data":{}}')],
    ['a binary frame', (s) => s.binary(encodeFrame(1, FrameKind.DATA, FLAG_FIN, new Uint8Array([1, 2, 3])))],
    ['a Heartbeat', (s) => s.text('{"type":"Heartbeat","data":{}}')],
    ['a RegisterTunnel', (s) => s.text('{"type":"RegisterTunnel","data":{"subdomain":"early","local_port":3000}}')],
    ['an unknown message type', (s) => s.text('{"type":"FutureThing","data":{}}')],
    ['a server-to-client type', (s) => s.text('{"type":"AuthResult","data":{"success":true,"user_id":"x","error":null}}')],
  ];
  for (const [name, act] of beforeAuth) {
    it(`closes with 4002 on ${name} before Auth`, async () => {
      const client = await server.connect();
      act({ text: (t) => client.sendText(t), binary: (b) => client.sendBinary(b) });
      expect((await client.waitClosed()).code).toBe(4002);
      expect(client.all('AuthResult')).toEqual([]);
    });
  }

  it('closes with 4002 on a text frame over 64 KiB, counted in bytes', async () => {
    // 40,000 two-byte characters: under 64 Ki characters, over 64 KiB.
    const padding = 'é'.repeat(40_000);
    expect(Buffer.byteLength(padding)).toBeGreaterThan(MAX_CONTROL_TEXT_BYTES);
    const client = await server.connect();
    client.sendText(JSON.stringify({ type: 'Auth', data: { api_key: user.key, client: padding } }));
    expect((await client.waitClosed()).code).toBe(4002);
  });

  it('closes with 4002 on a text frame over 64 KiB after authentication too', async () => {
    const client = await server.connect();
    expect((await client.auth(user.key)).success).toBe(true);
    client.sendText(JSON.stringify({ type: 'Heartbeat', data: { pad: 'x'.repeat(MAX_CONTROL_TEXT_BYTES) } }));
    expect((await client.waitClosed()).code).toBe(4002);
  });

  it('accepts a text frame of exactly 64 KiB', async () => {
    const client = await server.connect();
    const shell = JSON.stringify({ type: 'Auth', data: { api_key: user.key, pad: '' } });
    client.sendText(JSON.stringify({ type: 'Auth', data: { api_key: user.key, pad: 'x'.repeat(MAX_CONTROL_TEXT_BYTES - shell.length) } }));
    expect((await client.next('AuthResult')).success).toBe(true);
    client.close();
  });

  it('ignores unknown message types after authentication', async () => {
    const client = await server.connect();
    expect((await client.auth(user.key)).success).toBe(true);
    client.sendText('{"type":"FutureThing","data":{"x":1}}');
    const answer = await client.register({ subdomain: 'after-unknown', local_port: 3000 });
    expect(answer.type).toBe('TunnelReady');
    client.close();
  });

  it('takes RegisterTunnel sent right behind Auth, before AuthResult', async () => {
    const client = await server.connect();
    client.send({ type: 'Auth', data: { api_key: user.key } });
    client.send({ type: 'RegisterTunnel', data: { subdomain: 'pipelined', local_port: 3000 } });
    expect((await client.next('AuthResult')).success).toBe(true);
    expect((await client.next('TunnelReady')).subdomain).toBe('pipelined');
    client.close();
  });

  it('answers a bad Bearer key on the upgrade request with the API 401 envelope, before any upgrade', async () => {
    const before = server.running.relay.sessionCount;
    const res = await rawHttp(server.port, upgradeRequest(['Authorization: Bearer exp_k1_notavalidkeyatall']));
    expect(res.status).toBe(401);
    expect(res.header('content-type')).toContain('application/json');
    expect(JSON.parse(res.body)).toEqual({ error: 'unauthorized', message: expect.any(String) });
    expect(res.header('upgrade')).toBeUndefined();
    // No session was made for it (earlier tests' sessions may still be closing, never opening).
    expect(server.running.relay.sessionCount).toBeLessThanOrEqual(before);
  });

  it('answers a JWT on the upgrade request with the API 403 envelope', async () => {
    const res = await rawHttp(server.port, upgradeRequest([`Authorization: Bearer ${user.token}`]));
    expect(res.status).toBe(403);
    expect(JSON.parse(res.body).error).toBe('forbidden');
  });

  it('upgrades with a valid Bearer key on the upgrade request', async () => {
    const res = await rawHttp(server.port, upgradeRequest([`Authorization: Bearer ${user.key}`]));
    expect(res.status).toBe(101);
  });

  it('answers a plain GET of the connect path with 400, not a crash', async () => {
    const res = await server.api('GET', '/api/v1/tunnel/connect');
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toBe('validation_error');
  });
});

describe('the auth-class rate limit on connection attempts', () => {
  let server: TunnelTestServer;
  afterAll(() => server.stop());

  it('takes one auth token per connection attempt, answers 429 with Retry-After when empty, and never limits an open connection', async () => {
    const limit = 4;
    server = await startTunnelServer({ env: { EXPOSE_RATE_LIMIT_AUTH: String(limit) } });
    const user = await server.newUser(); // registering took one token
    const { client } = await server.tunnel(user.key, 'limited'); // a second
    client.serve(() => ({ status: 200, body: 'still relayed' }));
    let accepted = 2;
    let refused: Response | undefined;
    for (let attempt = 0; attempt < limit + 2 && refused === undefined; attempt++) {
      const res = await server.api('GET', '/api/v1/tunnel/connect');
      if (res.status === 429) refused = res;
      else {
        expect(res.status).toBe(400);
        accepted++;
      }
    }
    expect(accepted).toBe(limit);
    expect(refused).toBeDefined();
    expect(Number(refused!.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(((await refused!.json()) as { error: string }).error).toBe('rate_limited');

    const upgrade = await rawHttp(server.port, upgradeRequest());
    expect(upgrade.status).toBe(429);

    // The connection made before the bucket emptied keeps working, and so do its visitors.
    for (let i = 0; i < limit * 3; i++) {
      const res = await server.visit('limited.expose.test', `/n${i}`);
      expect(await res.text()).toBe('still relayed');
    }
    client.send({ type: 'Heartbeat', data: {} });
    expect(client.isOpen).toBe(true);
  });
});
