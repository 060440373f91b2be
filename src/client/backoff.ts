/** Reconnect delays: exponential backoff with full jitter, pure so the maths is tested without waiting. */

/** First reconnect delay cap: 0.5 s, as the spec says. */
export const DEFAULT_BACKOFF_BASE_MS = 500;
/** Largest reconnect delay cap: 30 s. */
export const DEFAULT_BACKOFF_MAX_MS = 30_000;

/** Bounds of the backoff schedule. */
export interface BackoffPolicy {
  baseMs: number;
  maxMs: number;
}

/**
 * The delay before reconnect attempt `attempt` (0 for the first retry after a drop): a uniform draw
 * in [0, min(max, base · 2^attempt)). Full jitter ("Exponential Backoff And Jitter", AWS, 2015)
 * spreads the clients of a restarted server over the whole window instead of having them all
 * return at the same instants. `random` is Math.random in production, a fixed value in tests.
 */
export function backoffDelayMs(attempt: number, policy: BackoffPolicy, random: () => number): number {
  // 2^attempt overflows nothing that matters: past ~2^40 the min() has long since picked maxMs.
  const capMs = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.min(attempt, 40));
  return Math.floor(random() * capMs);
}
