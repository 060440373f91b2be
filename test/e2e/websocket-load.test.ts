/**
 * Many WebSockets through one tunnel, with real processes: 200 visitors echoing at once through the
 * `ws` echo server, and a visitor who completes the handshake and then never reads while the local
 * server floods it. Flow control must stall that one socket only, all the way back to the local
 * server's writes, with the server's memory bounded and everyone else keeping their pace.
 */
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { join } from 'node:path';
import { cleanUp } from '../client/process.ts';
import {
  type E2EServer,
  type E2EUser,
  FIXTURES,
  type LocalService,
  MIB,
  rawUpgrade,
  RssWatch,
  startClient,
  startE2EServer,
  startLocalService,
  stopLocalServices,
  tunnelInfo,
  until,
  VisitorSocket,
  withTimeout,
} from './harness.ts';

const SUBDOMAIN = 'crowd';
const VISITORS = 200;
const MESSAGES_PER_VISITOR = 5;
/**
 * Bound on the server's RSS growth while one visitor reads nothing and its local server floods:
 * flow control holds about one stream window (1 MiB) plus Bun's socket buffer (1 MiB) for that
 * socket; the rest is 200 sockets' own buffers and the allocator's slack. Without flow control the
 * flood would pile up in the server at loopback speed, hundreds of MiB a second.
 */
const RSS_GROWTH_BOUND_BYTES = 128 * MIB;
/**
 * Bound on what the local server manages to write before its writes stall: the kernel buffers on
 * each hop (a few MiB each on loopback) and the windows (1 MiB per stream). Unbounded without flow
 * control.
 */
const FLOOD_BOUND_BYTES = 64 * MIB;
/** Longest echo round trip allowed for the other visitors during the flood (on a loaded two-core machine; they take a few ms). */
const ROUND_TRIP_BOUND_MS = 5_000;
const LOAD_TIMEOUT_MS = 45_000;

let server: E2EServer;
let user: E2EUser;
let echo: LocalService;

beforeAll(async () => {
  server = await startE2EServer();
  user = await server.newUser();
  echo = await startLocalService(['node', join(FIXTURES, 'ws-echo-server.mjs')]);
  await startClient(server, user.key, SUBDOMAIN, echo.port);
}, 30_000);

afterAll(async () => {
  cleanUp();
  await stopLocalServices();
  expect(await server?.stop()).toBe('');
});

/** Opens `count` visitors at once; each sends MESSAGES_PER_VISITOR messages one after another, checking each echo; resolves with every round trip's duration. */
async function crowd(count: number): Promise<{ visitors: VisitorSocket[]; run: () => Promise<number[]> }> {
  const visitors = await Promise.all(Array.from({ length: count }, (_, i) => VisitorSocket.open(server, SUBDOMAIN, `/visitor/${i}`)));
  const run = async () => {
    const durations: number[] = [];
    await Promise.all(
      visitors.map(async (visitor, i) => {
        for (let j = 0; j < MESSAGES_PER_VISITOR; j++) {
          const message = `visitor ${i} message ${j}`;
          const startedAt = performance.now();
          expect(await visitor.roundTrip(message)).toBe(message);
          durations.push(performance.now() - startedAt);
        }
      }),
    );
    return durations;
  };
  return { visitors, run };
}

/** Closes `visitors` and waits until the tunnel counts only `remaining` streams. */
async function closeAll(visitors: VisitorSocket[], remaining = 0): Promise<void> {
  for (const visitor of visitors) visitor.socket.close(1000);
  await Promise.all(visitors.map((visitor) => withTimeout(visitor.closed, 'a visitor to close')));
  await until(async () => (await tunnelInfo(server, user.key, SUBDOMAIN)).active_streams === remaining, `active_streams back to ${remaining}`);
}

const summary = (durations: number[]) => {
  const sorted = [...durations].sort((a, b) => a - b);
  const at = (q: number) => Math.round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!);
  return { median_ms: at(0.5), p99_ms: at(0.99), max_ms: Math.round(sorted.at(-1)!) };
};

/** One masked text frame (RFC 6455 §5.2), as a client must send it; `text` under 126 bytes. */
function maskedTextFrame(text: string): Uint8Array {
  const payload = new TextEncoder().encode(text);
  const mask = crypto.getRandomValues(new Uint8Array(4));
  const frame = new Uint8Array(6 + payload.byteLength);
  frame.set([0x81, 0x80 | payload.byteLength, ...mask]);
  payload.forEach((byte, i) => (frame[6 + i] = byte ^ mask[i % 4]!));
  return frame;
}

describe('many WebSockets through one tunnel', () => {
  it(
    `${VISITORS} concurrent connections each get their own ${MESSAGES_PER_VISITOR} echoes, and all count as active streams`,
    async () => {
      const startedAt = performance.now();
      const { visitors, run } = await crowd(VISITORS);
      const openMs = performance.now() - startedAt;
      expect((await tunnelInfo(server, user.key, SUBDOMAIN)).active_streams).toBe(VISITORS);
      const durations = await run();
      expect(durations).toHaveLength(VISITORS * MESSAGES_PER_VISITOR);
      console.log(`${VISITORS} sockets opened in ${Math.round(openMs)} ms; echo round trips:`, summary(durations));
      await closeAll(visitors);
    },
    LOAD_TIMEOUT_MS,
  );

  it(
    'a visitor who reads nothing while the local server floods them stalls only their own socket: the others keep their pace and the server stays small',
    async () => {
      const rss = new RssWatch(server.pid);
      try {
        const stalled = await rawUpgrade(server, SUBDOMAIN, '/flood');
        expect(stalled.status).toBe(101);
        const before = echo.log.lines.length;
        // The only thing this visitor ever sends; from here on it reads nothing (its socket is paused).
        stalled.socket.write(maskedTextFrame('flood'));
        // The flood's writes stop: back-pressure has crossed the server, the tunnel and the client.
        const stall = JSON.parse(
          await echo.log.find((line, i) => i >= before && line.includes('"stalled"') && JSON.parse(line).bytes >= 4 * MIB, 'the flood to stall after 4 MiB', 20_000),
        ) as { bytes: number };
        expect(stall.bytes).toBeLessThan(FLOOD_BOUND_BYTES);

        // Everyone else, meanwhile.
        const { visitors, run } = await crowd(VISITORS);
        const durations = await run();
        const pace = summary(durations);
        expect(pace.max_ms).toBeLessThan(ROUND_TRIP_BOUND_MS);
        // The reader-less visitor's socket is still there.
        await closeAll(visitors, 1);

        // The flood is still held where it was, not drained into the server.
        const flooded = echo.log.lines
          .slice(before)
          .map((line) => JSON.parse(line) as { event: string; bytes?: number })
          .filter((event) => event.event === 'flooded' || event.event === 'stalled');
        const floodedBytes = Math.max(...flooded.map((event) => event.bytes ?? 0));
        expect(floodedBytes).toBeLessThan(FLOOD_BOUND_BYTES);

        const growth = rss.peakBytes - rss.baselineBytes;
        console.log(
          `reader-less visitor: the local server's writes stalled after ${(stall.bytes / MIB).toFixed(1)} MiB (${(floodedBytes / MIB).toFixed(1)} MiB in all, bound ${FLOOD_BOUND_BYTES / MIB} MiB);`,
          `${VISITORS} others' echo round trips meanwhile:`,
          pace,
          `; server RSS ${(rss.baselineBytes / MIB).toFixed(1)} MiB -> peak ${(rss.peakBytes / MIB).toFixed(1)} MiB (growth ${(growth / MIB).toFixed(1)} MiB, bound ${RSS_GROWTH_BOUND_BYTES / MIB} MiB)`,
        );
        expect(growth).toBeLessThan(RSS_GROWTH_BOUND_BYTES);

        // The reader-less visitor goes away: the local socket is closed (going away) and the flood ends.
        stalled.socket.destroy();
        await echo.log.event('close', { code: 1001 }, undefined, before);
        await echo.log.event('flood-ended', {}, undefined, before);
        await until(async () => (await tunnelInfo(server, user.key, SUBDOMAIN)).active_streams === 0, 'active_streams back to 0');
      } finally {
        rss.stop();
      }
    },
    LOAD_TIMEOUT_MS,
  );
});
