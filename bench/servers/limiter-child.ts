/**
 * Limiter memory child: feeds 1,000,000 distinct client addresses through a fresh RateLimiter (the
 * same address lookup + bucket path a request takes) and prints one `RESULT {json}` line with the memory
 * it retains after a full GC. Its own process, so nothing else shares the heap being measured.
 *   bun bench/servers/limiter-child.ts <instant|spread>
 * `instant`: every address in the same millisecond (worst case: the store fills to its cap).
 * `spread`: 100,000 new addresses per second, as a sustained flood; full buckets are swept as it runs.
 */
import { heapStats } from 'bun:jsc';
import { ClientAddresses } from '../../src/http/client-address.ts';
import { RateLimiter } from '../../src/http/rate-limit.ts';
import { ManualClock } from '../../src/lib/clock.ts';

const ADDRESSES = 1_000_000;
const SPREAD_ADDRESSES_PER_SECOND = 100_000;
const scenario = process.argv[2] === 'spread' ? 'spread' : 'instant';

function ipv4(n: number): string {
  // 11.0.0.0 onwards: plain public-looking addresses, all distinct.
  const v = 0x0b000000 + n;
  return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
}

function settledMemory(): { heapBytes: number; rssBytes: number } {
  Bun.gc(true);
  Bun.gc(true);
  return { heapBytes: heapStats().heapSize, rssBytes: process.memoryUsage().rss };
}

const clock = new ManualClock(Date.now());
const limiter = new RateLimiter({ authPerMinute: 10, apiPerMinute: 100 }, clock);
// One request object stands for every caller: the address comes from the socket-address hook, as
// from a listener; the lookup's small memo of socket addresses fills and empties as it would.
let current = '';
const addresses = new ClientAddresses(() => current, []);
const request = new Request('http://localhost/api/v1/anything');
const before = settledMemory();
const msPerAddress = 1000 / SPREAD_ADDRESSES_PER_SECOND;
// The time includes making each address string (tens of ns); the memory is measured after a full GC.
const startedNs = Bun.nanoseconds();
let refused = 0;
for (let i = 0; i < ADDRESSES; i++) {
  if (scenario === 'spread') clock.advance(msPerAddress);
  const headers: Record<string, unknown> = {};
  current = ipv4(i);
  const result = limiter.record('general', addresses.of(request).key, headers);
  if (result && !result.allowed) refused++;
}
const nsPerRequest = (Bun.nanoseconds() - startedNs) / ADDRESSES;
const after = settledMemory();
const result = {
  scenario,
  addresses: ADDRESSES,
  buckets: limiter.sizes.general,
  refusedByOverflow: refused,
  retainedHeapMiB: (after.heapBytes - before.heapBytes) / (1024 * 1024),
  rssGrowthMiB: (after.rssBytes - before.rssBytes) / (1024 * 1024),
  bytesPerBucket: limiter.sizes.general > 0 ? (after.heapBytes - before.heapBytes) / limiter.sizes.general : 0,
  nsPerRequest,
};
process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
