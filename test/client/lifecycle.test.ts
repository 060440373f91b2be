/** The client's connection over time: heartbeats, a silent server, reconnecting with the resume token, and when it must stop. */
import { afterEach, describe, expect, it } from 'bun:test';
import { FakeTunnelServer } from './fake-server.ts';
import { startClient, type RunningClient } from './helpers.ts';

const LOCAL_PORT = 4321;

let fake: FakeTunnelServer;
let running: RunningClient | undefined;
afterEach(async () => {
  await running?.stop();
  running = undefined;
  fake?.stop();
});

describe('heartbeats and liveness', () => {
  it('sends Heartbeat at its interval, and none before it is authenticated', async () => {
    fake = new FakeTunnelServer();
    running = startClient(fake, LOCAL_PORT, { heartbeatIntervalMs: 10 });
    const connection = await fake.connection();
    await connection.message('Auth');
    // Five intervals without an AuthResult: a heartbeat now would be a protocol error (4002).
    await Bun.sleep(50);
    expect(connection.messages.map((m) => m.type)).toEqual(['Auth']);
    await connection.handshake();
    await connection.message('Heartbeat', 2);
    expect(connection.all('Heartbeat')[0]!.data).toEqual({});
  });

  it('reconnects when the server has sent nothing for deadAfterMs', async () => {
    fake = new FakeTunnelServer();
    running = startClient(fake, LOCAL_PORT, { heartbeatIntervalMs: 20, deadAfterMs: 150 });
    const first = await fake.connection();
    await first.handshake({ subdomain: 'quiet', resumeToken: 'token-quiet' });
    // The fake server now says nothing at all: a half-open connection, as far as the client knows.
    const second = await fake.connection(1);
    await second.handshake();
    expect(second.all('RegisterTunnel')[0]!.data).toEqual({ subdomain: 'quiet', local_port: LOCAL_PORT, resume_token: 'token-quiet' });
    const disconnected = running.reporter.states.find((s) => s.state === 'Disconnected');
    expect(disconnected?.detail).toStartWith('no word from the server');
  });

  it('stays on a server that keeps sending heartbeats', async () => {
    fake = new FakeTunnelServer();
    // The silence limit is 15 heartbeats long, so a loaded machine that delays a few cannot fake a death.
    running = startClient(fake, LOCAL_PORT, { heartbeatIntervalMs: 20, deadAfterMs: 300 });
    const connection = await fake.connection();
    await connection.handshake();
    const beat = setInterval(() => connection.send({ type: 'Heartbeat', data: {} }), 20);
    // Four times the silence limit, with the server alive throughout.
    await Bun.sleep(1200);
    clearInterval(beat);
    expect(fake.connections).toHaveLength(1);
    expect(connection.closeInfo).toBeUndefined();
  });
});

describe('reconnecting', () => {
  it('comes back after a drop (1006) and after a shutdown (1001), asking for the same subdomain with its resume_token', async () => {
    fake = new FakeTunnelServer();
    running = startClient(fake, LOCAL_PORT, { subdomain: 'myapp' });
    const first = await fake.connection();
    await first.handshake({ resumeToken: 'token-A' });
    first.ws.terminate(); // no close frame: the client sees 1006

    const second = await fake.connection(1);
    await second.handshake({ resumeToken: 'token-B' });
    expect(second.all('RegisterTunnel')[0]!.data).toEqual({ subdomain: 'myapp', local_port: LOCAL_PORT, resume_token: 'token-A' });
    second.send({ type: 'GoAway', data: { reason: 'shutdown' } });
    second.ws.close(1001, 'shutting down');

    const third = await fake.connection(2);
    await third.handshake();
    expect(third.all('RegisterTunnel')[0]!.data).toEqual({ subdomain: 'myapp', local_port: LOCAL_PORT, resume_token: 'token-B' });
    await running.reporter.until(() => running!.reporter.readies.length === 3);
    const details = running.reporter.states.filter((s) => s.state === 'Disconnected').map((s) => s.detail);
    expect(details).toEqual(['connection lost', 'server shutting down']);
    expect(running.reporter.states.filter((s) => s.state === 'Reconnecting')).toHaveLength(2);
  });

  it('keeps the generated subdomain it was given across a reconnect', async () => {
    fake = new FakeTunnelServer();
    running = startClient(fake, LOCAL_PORT);
    const first = await fake.connection();
    await first.handshake({ subdomain: 'brave-otter-3f9a' });
    expect(first.all('RegisterTunnel')[0]!.data.subdomain).toBeNull();
    first.ws.terminate();
    const second = await fake.connection(1);
    await second.handshake();
    expect(second.all('RegisterTunnel')[0]!.data).toMatchObject({ subdomain: 'brave-otter-3f9a', resume_token: 'resume-1' });
  });

  it('registers again on the same connection when its name is still taken after a reconnect', async () => {
    fake = new FakeTunnelServer();
    running = startClient(fake, LOCAL_PORT, { subdomain: 'myapp' });
    const first = await fake.connection();
    await first.handshake();
    first.ws.terminate();
    const second = await fake.connection(1);
    await second.message('Auth');
    second.send({ type: 'AuthResult', data: { success: true, user_id: 'user-1', error: null, features: ['flow_control'] } });
    await second.message('RegisterTunnel');
    second.send({ type: 'TunnelError', data: { error: 'subdomain_taken', message: 'myapp is taken' } });
    await second.message('RegisterTunnel', 1);
    second.send({ type: 'TunnelReady', data: { subdomain: 'myapp', public_url: 'http://myapp.expose.test' } });
    await running.reporter.until(() => running!.reporter.readies.length === 2);
    expect(fake.connections).toHaveLength(2);
    expect(second.closeInfo).toBeUndefined();
  });
});

describe('stopping for good', () => {
  const cases = [
    { code: 4001, goAway: 'revoked', message: 'API key revoked' },
    { code: 4001, goAway: undefined, message: 'API key revoked' },
    { code: 4003, goAway: undefined, message: 'forbidden: tunnels need an API key, not a session token' },
    { code: 4010, goAway: 'closed_by_owner', message: 'tunnel closed by its owner' },
    { code: 4009, goAway: 'replaced', message: 'replaced by a newer connection for the same subdomain' },
  ] as const;
  for (const { code, goAway, message } of cases) {
    it(`never reconnects after close ${code}${goAway ? ` with GoAway ${goAway}` : ''}`, async () => {
      fake = new FakeTunnelServer();
      running = startClient(fake, LOCAL_PORT);
      const connection = await fake.connection();
      await connection.handshake();
      if (goAway) connection.send({ type: 'GoAway', data: { reason: goAway } });
      connection.ws.close(code, 'bye');
      expect(await running.outcome).toEqual({ status: 'fatal', message });
      expect(fake.connections).toHaveLength(1);
      expect(running.reporter.states.at(-1)).toEqual({ state: 'Error', detail: message });
    });
  }

  it('stops on a refused key, whatever the close code after it', async () => {
    fake = new FakeTunnelServer();
    running = startClient(fake, LOCAL_PORT);
    const connection = await fake.connection();
    await connection.message('Auth');
    connection.send({ type: 'AuthResult', data: { success: false, user_id: null, error: 'unauthorized' } });
    const outcome = await running.outcome;
    expect(outcome).toMatchObject({ status: 'fatal' });
    expect((outcome as { message: string }).message).toStartWith('unauthorized');
    expect(connection.all('RegisterTunnel')).toEqual([]);
    expect(fake.connections).toHaveLength(1);
  });

  it('stops when its first registration is refused, with the server message', async () => {
    fake = new FakeTunnelServer();
    running = startClient(fake, LOCAL_PORT, { subdomain: 'taken-name' });
    const connection = await fake.connection();
    await connection.message('Auth');
    connection.send({ type: 'AuthResult', data: { success: true, user_id: 'user-1', error: null } });
    await connection.message('RegisterTunnel');
    connection.send({ type: 'TunnelError', data: { error: 'subdomain_taken', message: 'The subdomain is taken' } });
    expect(await running.outcome).toEqual({ status: 'fatal', message: 'The subdomain is taken (subdomain_taken)' });
    expect(fake.connections).toHaveLength(1);
  });

  it('stops when the server cannot be reached at first', async () => {
    fake = new FakeTunnelServer();
    fake.stop();
    running = startClient(fake, LOCAL_PORT);
    const outcome = await running.outcome;
    expect(outcome).toMatchObject({ status: 'fatal' });
    expect((outcome as { message: string }).message).toStartWith('cannot reach the server');
  });

  it('closes with 1000 on stop(), so the server frees the subdomain at once', async () => {
    fake = new FakeTunnelServer();
    running = startClient(fake, LOCAL_PORT);
    const connection = await fake.connection();
    await connection.handshake();
    await running.reporter.until(() => running!.reporter.readies.length === 1);
    expect(await running.stop()).toEqual({ status: 'stopped' });
    expect((await connection.closed()).code).toBe(1000);
    expect(running.reporter.states.at(-1)).toEqual({ state: 'Disconnected', detail: 'stopped' });
  });
});
