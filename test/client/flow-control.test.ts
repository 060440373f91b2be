/** Flow control, client side: response bodies stay within the server's grants; request-body grants follow the local service's reading. */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'bun:test';
import type { LocalFetch } from '../../src/client/stream-context.ts';
import { FakeTunnelServer, type FakeConnection } from './fake-server.ts';
import { patternBytes, startClient, type RunningClient } from './helpers.ts';

const KIB = 1024;
const BIG_BODY = patternBytes(600 * KIB + 5);

let origin: ReturnType<typeof Bun.serve>;
beforeAll(() => {
  origin = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    fetch: async (req) => {
      if (new URL(req.url).pathname === '/upload') return new Response(req.body);
      return new Response(BIG_BODY);
    },
  });
});
afterAll(() => origin.stop(true));

let fake: FakeTunnelServer;
let running: RunningClient | undefined;
afterEach(async () => {
  await running?.stop();
  running = undefined;
  fake?.stop();
});

const finished = (connection: FakeConnection, streamId: number) => connection.frames.some((f) => f.streamId === streamId && f.fin);

describe('sending response bodies', () => {
  it('never sends more of a stream than its window before a WindowUpdate', async () => {
    const windowBytes = 64 * KIB;
    fake = new FakeTunnelServer();
    running = startClient(fake, origin.port!);
    const connection = await fake.connection();
    await connection.handshake({ window: windowBytes });
    connection.open(1, 'GET', '/big');
    let granted = windowBytes;
    let grants = 0;
    // Grant more only once the client has used all it had: a client that ignored the window would
    // have sent the whole body by then, and the fake server records each byte over the grant.
    for (;;) {
      const state = await connection.waitFor(() => (finished(connection, 1) ? 'fin' : connection.bytesReceived(1) >= granted ? 'blocked' : undefined));
      if (state === 'fin') break;
      expect(connection.bytesReceived(1)).toBe(granted);
      connection.grant(1, windowBytes);
      granted += windowBytes;
      grants++;
    }
    expect(connection.violations).toEqual([]);
    expect(grants).toBe(Math.ceil(BIG_BODY.byteLength / windowBytes) - 1);
    const result = await connection.result(1);
    if (result.kind !== 'response') throw new Error('no response');
    expect(Buffer.from(result.body).equals(Buffer.from(BIG_BODY))).toBe(true);
  });

  it('never sends more on the whole connection than its window, across streams', async () => {
    const connectionWindowBytes = 100 * KIB;
    fake = new FakeTunnelServer();
    running = startClient(fake, origin.port!, { connectionWindowBytes });
    const connection = await fake.connection();
    await connection.handshake();
    connection.setConnectionWindow(connectionWindowBytes);
    connection.open(1, 'GET', '/big');
    connection.open(3, 'GET', '/big');
    let granted = connectionWindowBytes;
    const total = () => connection.bytesReceived(1) + connection.bytesReceived(3);
    for (;;) {
      const state = await connection.waitFor(() =>
        finished(connection, 1) && finished(connection, 3) ? 'fin' : total() >= granted ? 'blocked' : undefined,
      );
      if (state === 'fin') break;
      expect(total()).toBe(granted);
      connection.grant(0, connectionWindowBytes);
      granted += connectionWindowBytes;
    }
    expect(connection.violations).toEqual([]);
    for (const id of [1, 3]) {
      const result = await connection.result(id);
      if (result.kind !== 'response') throw new Error('no response');
      expect(Buffer.from(result.body).equals(Buffer.from(BIG_BODY))).toBe(true);
    }
  });
});

describe('receiving request bodies', () => {
  it('grants a stream only what the local service has read, and the upload completes', async () => {
    const windowBytes = 64 * KIB;
    const body = patternBytes(5 * windowBytes + 100);
    let readBytes = 0;
    let readerDone = false;
    const received: Uint8Array[] = [];
    const breaches: string[] = [];
    let connection!: FakeConnection;

    // The request body as the visitor's side sends it: never past the window, more on each grant.
    let sentBytes = 0;
    let grantedBytes = windowBytes;
    const sendWithinWindow = () => {
      while (sentBytes < body.byteLength && sentBytes < grantedBytes) {
        const end = Math.min(body.byteLength, grantedBytes, sentBytes + 64 * KIB);
        connection.sendData(1, body.subarray(sentBytes, end), end === body.byteLength);
        sentBytes = end;
      }
    };

    // A local service that reads one chunk each time the test lets it.
    let permit = Promise.withResolvers<void>();
    let readDone = Promise.withResolvers<void>();
    const slowReader: LocalFetch = async (url, init) => {
      if (url.endsWith('/sync')) return new Response('ok');
      const reader = (init.body as ReadableStream<Uint8Array>).getReader();
      for (;;) {
        await permit.promise;
        permit = Promise.withResolvers<void>();
        const { value, done } = await reader.read();
        if (done) break;
        received.push(value);
        readBytes += value.byteLength;
        readDone.resolve();
      }
      readerDone = true;
      readDone.resolve();
      return new Response('stored', { status: 201 });
    };

    fake = new FakeTunnelServer();
    running = startClient(fake, origin.port!, { fetch: slowReader });
    connection = await fake.connection();
    connection.listen((message) => {
      if (message.type !== 'WindowUpdate' || message.data.stream_id !== 1) return;
      grantedBytes += message.data.bytes;
      if (grantedBytes - windowBytes > readBytes) breaches.push(`granted ${grantedBytes - windowBytes} with ${readBytes} read`);
      sendWithinWindow();
    });
    await connection.handshake({ window: windowBytes });
    connection.send({ type: 'StreamOpen', data: { stream_id: 1, method: 'PUT', path: '/upload', headers: [] } });
    sendWithinWindow();

    for (let syncId = 101; !readerDone; syncId += 2) {
      // The answer to a later request proves the client has handled every frame sent before it:
      // a client that granted on receipt has granted by now, with nothing read.
      connection.open(syncId, 'GET', '/sync');
      await connection.result(syncId);
      readDone = Promise.withResolvers<void>();
      permit.resolve();
      await readDone.promise;
    }

    const result = await connection.result(1);
    expect(result).toMatchObject({ kind: 'response', status: 201 });
    expect(breaches).toEqual([]);
    expect(Buffer.from(Buffer.concat(received)).equals(Buffer.from(body))).toBe(true);
    // The upload needed grants to finish at all: five windows' worth and a bit.
    expect(grantedBytes).toBeGreaterThanOrEqual(body.byteLength);
    // Connection grants come in quarter-window batches (4 MiB of 16 MiB): none for 320 KiB.
    expect(connection.all('WindowUpdate').filter((m) => m.data.stream_id === 0)).toEqual([]);
  });
});

describe('without the flow_control feature', () => {
  it('relays bodies without any WindowUpdate when the server does not accept the feature', async () => {
    fake = new FakeTunnelServer();
    running = startClient(fake, origin.port!);
    const connection = await fake.connection();
    await connection.handshake({ accept: [] });
    const upload = patternBytes(2 * 1024 * KIB);
    connection.open(1, 'POST', '/upload', [], upload);
    connection.open(3, 'GET', '/big');
    const [echoed, big] = [await connection.result(1), await connection.result(3)];
    if (echoed.kind !== 'response' || big.kind !== 'response') throw new Error('no response');
    expect(Buffer.from(echoed.body).equals(Buffer.from(upload))).toBe(true);
    expect(Buffer.from(big.body).equals(Buffer.from(BIG_BODY))).toBe(true);
    expect(connection.all('WindowUpdate')).toEqual([]);
    expect(running.reporter.readies[0]!.flowControl).toBe(false);
  });
});
