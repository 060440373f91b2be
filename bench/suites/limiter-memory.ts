/** The rate limiter's memory after 1,000,000 distinct client addresses, in two scenarios, each in its own child. */
import { join } from 'node:path';
import { BUN, readTaggedLine } from '../lib/process.ts';
import { round } from '../lib/stats.ts';

const CHILD = join(import.meta.dir, '..', 'servers', 'limiter-child.ts');

/** One scenario's figures (see bench/servers/limiter-child.ts). */
export interface LimiterMemoryResult {
  scenario: 'instant' | 'spread';
  addresses: number;
  buckets: number;
  refusedByOverflow: number;
  retainedHeapMiB: number;
  rssGrowthMiB: number;
  bytesPerBucket: number;
  nsPerRequest: number;
}

/** Runs both scenarios. */
export async function measureLimiterMemory(): Promise<LimiterMemoryResult[]> {
  const results: LimiterMemoryResult[] = [];
  for (const scenario of ['instant', 'spread'] as const) {
    const child = Bun.spawn([BUN, CHILD, scenario], { stdout: 'pipe', stderr: 'inherit' });
    const raw = await readTaggedLine<LimiterMemoryResult>(child, 'RESULT ', 120_000);
    await child.exited;
    results.push({
      ...raw,
      retainedHeapMiB: round(raw.retainedHeapMiB, 1),
      rssGrowthMiB: round(raw.rssGrowthMiB, 1),
      bytesPerBucket: round(raw.bytesPerBucket, 0),
      nsPerRequest: round(raw.nsPerRequest, 0),
    });
  }
  return results;
}
