/**
 * The soaks' verdict on a server's resources: after a warm-up, did its resident memory or its open
 * file descriptors keep growing? Shared by bench/soak.ts and bench/tunnel-soak.ts.
 */
import { median, round } from './stats.ts';

/** One reading of the server, taken every few seconds. */
export interface ResourceSample {
  /** Seconds since the load started. */
  atSeconds: number;
  rssMiB: number;
  fds: number;
}

/** What the samples after the warm-up say. */
export interface GrowthVerdict {
  /** Samples after the warm-up, the only ones judged. */
  steadySamples: number;
  rssMiB: { earlyMedian: number; lateMedian: number; min: number; max: number };
  fds: { min: number; max: number; earlyMedian: number; lateMedian: number };
  rssFlat: boolean;
  fdsFlat: boolean;
}

/**
 * Splits the samples taken at or after `warmupSeconds` into thirds. Memory is flat when the median of
 * the last third is no more than 10% (+5 MiB of allocator slack) above the median of the first.
 * Descriptors are flat when they never spread over more than `fdSpread` (4: a server whose sockets
 * are all long-lived), and, when `fdDrift` is given, the late median is no more than `fdDrift` above
 * the early one. Without it that second rule is skipped: a drift bound of `fdSpread` or more could
 * never fail where the spread rule passed. A load whose connections come and go passes a wide
 * `fdSpread` and a tight `fdDrift`.
 */
export function judgeGrowth(samples: readonly ResourceSample[], options: { warmupSeconds: number; fdSpread?: number; fdDrift?: number }): GrowthVerdict {
  const fdSpread = options.fdSpread ?? 4;
  const steady = samples.filter((s) => s.atSeconds >= options.warmupSeconds);
  const third = Math.max(1, Math.floor(steady.length / 3));
  const early = steady.slice(0, third);
  const late = steady.slice(-third);
  const rssEarly = median(early.map((s) => s.rssMiB));
  const rssLate = median(late.map((s) => s.rssMiB));
  const fdsSeen = steady.map((s) => s.fds);
  const fds = {
    min: Math.min(...fdsSeen),
    max: Math.max(...fdsSeen),
    earlyMedian: median(early.map((s) => s.fds)),
    lateMedian: median(late.map((s) => s.fds)),
  };
  return {
    steadySamples: steady.length,
    rssMiB: { earlyMedian: round(rssEarly, 1), lateMedian: round(rssLate, 1), min: Math.min(...steady.map((s) => s.rssMiB)), max: Math.max(...steady.map((s) => s.rssMiB)) },
    fds,
    rssFlat: rssLate <= rssEarly * 1.1 + 5,
    fdsFlat: fds.max - fds.min <= fdSpread && (options.fdDrift === undefined || fds.lateMedian - fds.earlyMedian <= options.fdDrift),
  };
}
