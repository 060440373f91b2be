/** Token buckets for one rule, one per key, in memory that a flood of distinct keys cannot grow without limit. */
import { assertValidRule, isFull, take, type BucketRule, type BucketState, type TakeResult } from './token-bucket.ts';

/** Default hard cap on tracked keys: a few tens of MB at most. */
export const DEFAULT_MAX_ENTRIES = 100_000;
/** Default number of takes between two sweeps. */
export const DEFAULT_SWEEP_EVERY_TAKES = 10_000;
/** Name of the bucket shared by new keys while the store is at its cap (for logs and docs; not a real map key). */
export const OVERFLOW_KEY = '__overflow__';

/** Tuning for a BucketStore. */
export interface BucketStoreOptions {
  /** Hard cap on tracked keys (the shared overflow bucket is extra). */
  maxEntries?: number;
  /** A sweep runs after this many takes, or once a window has passed since the last one. */
  sweepEveryTakes?: number;
}

/**
 * Per-key buckets for one rule, with bounded memory.
 *
 * Sweeping: a full bucket behaves exactly like a missing one (a new key starts full), so deleting
 * full buckets never gives anyone a token back. The sweep walks the whole map, so it runs lazily:
 * after `sweepEveryTakes` takes (amortised cost maxEntries / sweepEveryTakes per take, even in a
 * flood) or once a whole window has passed since the last sweep (by then every bucket idle since
 * before it is full, so a quiet server still frees yesterday's crowd).
 *
 * Overflow policy: when the map is at `maxEntries` after sweeping, a key without a bucket gets no
 * entry of its own; all such keys share one overflow bucket (`OVERFLOW_KEY`, same rule). Nothing is
 * ever evicted mid-window, so a client cannot reset its own bucket by flooding the store with other
 * keys, and a flood of distinct addresses throttles itself: together its new keys get at most one
 * bucket's worth of requests. The cost is that a genuinely new client may share that overflow bucket
 * with the flood until the next sweep frees room.
 */
export class BucketStore {
  readonly rule: BucketRule;
  readonly maxEntries: number;
  private readonly sweepEveryTakes: number;
  private readonly buckets = new Map<string, BucketState>();
  // Kept outside the map so that no real key can collide with it and it never counts towards the cap.
  private overflow: BucketState | undefined;
  private takesSinceSweep = 0;
  // Undefined until the first take: the store has no clock of its own.
  private lastSweepMs: number | undefined;

  constructor(rule: BucketRule, options: BucketStoreOptions = {}) {
    assertValidRule(rule);
    this.rule = rule;
    this.maxEntries = options.maxEntries ?? DEFAULT_MAX_ENTRIES;
    this.sweepEveryTakes = options.sweepEveryTakes ?? DEFAULT_SWEEP_EVERY_TAKES;
    if (!Number.isInteger(this.maxEntries) || this.maxEntries < 1) throw new RangeError('maxEntries must be a positive integer');
    if (!Number.isInteger(this.sweepEveryTakes) || this.sweepEveryTakes < 1) {
      throw new RangeError('sweepEveryTakes must be a positive integer');
    }
  }

  /** Takes one token from `key`'s bucket at `nowMs` (see `take` in token-bucket.ts). */
  take(key: string, nowMs: number): TakeResult {
    this.takesSinceSweep++;
    this.lastSweepMs ??= nowMs;
    if (this.takesSinceSweep >= this.sweepEveryTakes || nowMs - this.lastSweepMs >= this.rule.windowMs) this.sweep(nowMs);

    const existing = this.buckets.get(key);
    if (existing !== undefined) return take(existing, this.rule, nowMs);
    if (this.buckets.size < this.maxEntries) {
      const result = take(undefined, this.rule, nowMs);
      this.buckets.set(key, result.state);
      return result;
    }
    const result = take(this.overflow, this.rule, nowMs);
    this.overflow = result.state;
    return result;
  }

  /** Deletes every bucket that is full at `nowMs`; returns how many were deleted. Runs by itself from `take`. */
  sweep(nowMs: number): number {
    let dropped = 0;
    // Deleting the current entry while iterating a Map is safe: iteration continues with the next one.
    for (const [key, state] of this.buckets) {
      if (isFull(state, this.rule, nowMs)) {
        this.buckets.delete(key);
        dropped++;
      }
    }
    this.takesSinceSweep = 0;
    this.lastSweepMs = nowMs;
    return dropped;
  }

  /** Keys with a bucket of their own (the overflow bucket not counted). */
  get size(): number {
    return this.buckets.size;
  }
}
