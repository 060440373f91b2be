/** Continuous-refill token bucket: pure arithmetic on a small state, with time passed in as nowMs. */

/** A rate limit: a bucket holds at most `capacity` tokens and refills continuously at `capacity` per `windowMs`. */
export interface BucketRule {
  /** Policy name, as shown in the RateLimit-Policy header (e.g. `general`). */
  name: string;
  /** Tokens in a full bucket: the burst size, and the refill per window. A positive integer. */
  capacity: number;
  /** Time for an empty bucket to refill completely, in milliseconds. */
  windowMs: number;
}

/** One client's bucket. `tokens` may be fractional; it is the count as of `updatedMs`. */
export interface BucketState {
  tokens: number;
  updatedMs: number;
}

/** The answer to one request. */
export interface TakeResult {
  allowed: boolean;
  /** The bucket after this request (the same object as the one passed in, when there was one). */
  state: BucketState;
  /** Whole tokens left (the `r` of the RateLimit header). */
  remaining: number;
  /** When refused: whole seconds until a token exists, at least 1 (Retry-After). 0 when allowed. */
  retryAfterSeconds: number;
  /** Whole seconds until the bucket is full again (the `t` of the RateLimit header); 0 when full. */
  resetSeconds: number;
}

/**
 * Slack when comparing token counts, to absorb floating-point rounding in the refill (so a client
 * told to come back at the exact refill time is not refused for 0.9999999999 tokens). With integer
 * timestamps a token count is a multiple of capacity / windowMs, so it is either whole or at least
 * 1 / windowMs (> 1e-8 for any window up to a day) away from whole: the slack never admits a
 * request the exact arithmetic would refuse.
 */
const TOKEN_EPSILON = 1e-9;

/** Throws a RangeError unless `rule` describes a bucket that can ever admit a request. */
export function assertValidRule(rule: BucketRule): void {
  if (!Number.isInteger(rule.capacity) || rule.capacity < 1) {
    throw new RangeError(`Rate limit "${rule.name}": capacity must be a positive integer, got ${rule.capacity}`);
  }
  if (!Number.isFinite(rule.windowMs) || rule.windowMs <= 0) {
    throw new RangeError(`Rate limit "${rule.name}": windowMs must be a positive number, got ${rule.windowMs}`);
  }
}

/** Tokens the bucket holds at `nowMs`; a clock that went backwards counts as no time elapsed. */
function refilledTokens(state: BucketState, rule: BucketRule, nowMs: number): number {
  const elapsedMs = Math.max(0, nowMs - state.updatedMs);
  return Math.min(rule.capacity, state.tokens + (elapsedMs * rule.capacity) / rule.windowMs);
}

/**
 * Refills the bucket up to `nowMs`, then takes one token if a whole one is available.
 * An absent state is a new client with a full bucket. For speed on the hot path, a passed-in state
 * is updated in place (and returned as `result.state`); callers that need the old value must copy it.
 */
export function take(state: BucketState | undefined, rule: BucketRule, nowMs: number): TakeResult {
  const bucket = state ?? { tokens: rule.capacity, updatedMs: nowMs };
  let tokens = refilledTokens(bucket, rule, nowMs);
  const allowed = tokens + TOKEN_EPSILON >= 1;
  if (allowed) tokens -= 1;
  bucket.tokens = tokens;
  // Never move updatedMs back: a later reading would otherwise count the same interval twice.
  bucket.updatedMs = Math.max(bucket.updatedMs, nowMs);

  const msPerToken = rule.windowMs / rule.capacity;
  const missingTokens = rule.capacity - tokens;
  // Half the slack in both waits, so that coming back after exactly that many seconds passes the
  // checks (which allow the whole slack) even after rounding.
  const msUntilToken = (1 - TOKEN_EPSILON / 2 - tokens) * msPerToken;
  const msUntilFull = (missingTokens - TOKEN_EPSILON / 2) * msPerToken;
  return {
    allowed,
    state: bucket,
    remaining: Math.max(0, Math.floor(tokens + TOKEN_EPSILON)),
    retryAfterSeconds: allowed ? 0 : Math.max(1, Math.ceil(msUntilToken / 1000)),
    resetSeconds: missingTokens <= TOKEN_EPSILON ? 0 : Math.ceil(msUntilFull / 1000),
  };
}

/** True when the bucket has refilled to capacity by `nowMs`: it is then the same as no bucket and can be forgotten. */
export function isFull(state: BucketState, rule: BucketRule, nowMs: number): boolean {
  return refilledTokens(state, rule, nowMs) + TOKEN_EPSILON >= rule.capacity;
}
