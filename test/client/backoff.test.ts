/** Reconnect delays: 0.5 s doubling to 30 s, full jitter. */
import { describe, expect, it } from 'bun:test';
import fc from 'fast-check';
import { DEFAULT_BACKOFF_BASE_MS, DEFAULT_BACKOFF_MAX_MS, backoffDelayMs } from '../../src/client/backoff.ts';

const policy = { baseMs: DEFAULT_BACKOFF_BASE_MS, maxMs: DEFAULT_BACKOFF_MAX_MS };

describe('backoffDelayMs', () => {
  it('caps at 0.5 s, 1 s, 2 s ... then 30 s', () => {
    const almostOne = () => 0.999999;
    expect([0, 1, 2, 3, 4, 5, 6, 7, 50].map((attempt) => backoffDelayMs(attempt, policy, almostOne))).toEqual([
      499, 999, 1999, 3999, 7999, 15_999, 29_999, 29_999, 29_999,
    ]);
  });

  it('draws anywhere from 0 up to the cap (full jitter)', () => {
    expect(backoffDelayMs(3, policy, () => 0)).toBe(0);
    expect(backoffDelayMs(3, policy, () => 0.5)).toBe(2000);
  });

  it('never exceeds the cap nor goes negative, for any attempt and draw', () => {
    fc.assert(
      fc.property(fc.nat(10_000), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), (attempt, draw) => {
        const delay = backoffDelayMs(attempt, policy, () => draw);
        return delay >= 0 && delay < Math.min(DEFAULT_BACKOFF_MAX_MS, DEFAULT_BACKOFF_BASE_MS * 2 ** attempt) + 1 && Number.isInteger(delay);
      }),
    );
  });
});
