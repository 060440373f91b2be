/** Token bucket arithmetic: admission, refill, Retry-After and reset times, and the rate bound for any arrival pattern. */
import { describe, expect, it } from 'bun:test';
import fc from 'fast-check';
import { assertValidRule, isFull, take, type BucketRule, type BucketState } from '../../src/lib/token-bucket.ts';

const AUTH: BucketRule = { name: 'auth', capacity: 10, windowMs: 60_000 };
const T0 = 1_700_000_000_000;

/** A bucket emptied at `nowMs` by `rule.capacity` takes. */
function drained(rule: BucketRule, nowMs: number): BucketState {
  let state: BucketState | undefined;
  for (let i = 0; i < rule.capacity; i++) state = take(state, rule, nowMs).state;
  return state as BucketState;
}

const copy = (state: BucketState): BucketState => ({ ...state });

/** Rules with integer capacity and a window of at most a day, as the server uses. */
const ruleArb = fc.record({
  name: fc.constant('p'),
  capacity: fc.integer({ min: 1, max: 200 }),
  windowMs: fc.integer({ min: 1, max: 86_400_000 }),
});

/** A rule and a monotone arrival sequence whose gaps are on the scale of its refill time. */
const arrivalsArb = ruleArb.chain((rule) =>
  fc.record({
    rule: fc.constant(rule),
    timesMs: fc
      .array(fc.integer({ min: 0, max: Math.ceil((2 * rule.windowMs) / rule.capacity) + 1 }), { minLength: 1, maxLength: 150 })
      .map((gaps) => gaps.reduce<number[]>((times, gap) => [...times, (times.at(-1) ?? T0) + gap], [])),
  }),
);

describe('take', () => {
  it('starts a new client with a full bucket and takes one token', () => {
    const result = take(undefined, AUTH, T0);
    expect(result).toEqual({
      allowed: true,
      state: { tokens: 9, updatedMs: T0 },
      remaining: 9,
      retryAfterSeconds: 0,
      resetSeconds: 6,
    });
  });

  it('refuses the 11th request in a minute', () => {
    let state: BucketState | undefined;
    const allowed: boolean[] = [];
    for (let i = 0; i < 11; i++) {
      const result = take(state, AUTH, T0 + i * 100);
      state = result.state;
      allowed.push(result.allowed);
    }
    // One second of refill is 0.17 token: not enough for an 11th request.
    expect(allowed).toEqual([...new Array<boolean>(10).fill(true), false]);
  });

  it('refuses a burst beyond capacity at one instant', () => {
    const state = drained(AUTH, T0);
    const result = take(state, AUTH, T0);
    expect(result.allowed).toBe(false);
    expect(result.remaining).toBe(0);
    expect(result.retryAfterSeconds).toBe(6);
    expect(result.resetSeconds).toBe(60);
  });

  it('refills exactly one token after windowMs / capacity ms, not one ms sooner', () => {
    expect(take(drained(AUTH, T0), AUTH, T0 + 5_999).allowed).toBe(false);
    expect(take(drained(AUTH, T0), AUTH, T0 + 6_000).allowed).toBe(true);
  });

  it('refills exactly at windowMs / capacity for a rate that is not a whole number of ms per token', () => {
    const rule: BucketRule = { name: 'odd', capacity: 7, windowMs: 60_000 };
    // One token every 8571.43 ms: the first ms at which a token exists is 8572.
    expect(take(drained(rule, T0), rule, T0 + 8_571).allowed).toBe(false);
    const result = take(drained(rule, T0), rule, T0 + 8_572);
    expect(result.allowed).toBe(true);
    expect(result.remaining).toBe(0);
  });

  it('never refills beyond capacity', () => {
    const state = drained(AUTH, T0);
    const result = take(state, AUTH, T0 + 10 * 60_000);
    expect(result.state.tokens).toBe(9);
    expect(result.remaining).toBe(9);
  });

  it('updates the given state in place and returns it', () => {
    const state: BucketState = { tokens: 3, updatedMs: T0 };
    const result = take(state, AUTH, T0);
    expect(result.state).toBe(state);
    expect(state.tokens).toBe(2);
  });

  it('treats a clock that goes backwards as no elapsed time', () => {
    const state = drained(AUTH, T0);
    expect(take(state, AUTH, T0 - 30_000).allowed).toBe(false);
    expect(state.updatedMs).toBe(T0);
    // Had the bucket been re-dated to T0 - 30 s, this would find 6 tokens instead of 1.
    expect(take(state, AUTH, T0 + 6_000).allowed).toBe(true);
    expect(take(state, AUTH, T0 + 6_000).allowed).toBe(false);
  });

  it('answers Retry-After of at least 1 second even when a token is a millisecond away', () => {
    const fast: BucketRule = { name: 'fast', capacity: 1000, windowMs: 1000 };
    const result = take(drained(fast, T0), fast, T0);
    expect(result.allowed).toBe(false);
    expect(result.retryAfterSeconds).toBe(1);
  });

  it('reports whole remaining tokens, rounded down', () => {
    const state: BucketState = { tokens: 2.9, updatedMs: T0 };
    expect(take(state, AUTH, T0).remaining).toBe(1);
  });

  it('admits at most capacity + capacity * (b - a) / windowMs requests in any interval [a, b]', () => {
    fc.assert(
      fc.property(arrivalsArb, ({ rule, timesMs }) => {
        let state: BucketState | undefined;
        const admittedMs: number[] = [];
        for (const nowMs of timesMs) {
          const result = take(state, rule, nowMs);
          state = result.state;
          if (result.allowed) admittedMs.push(nowMs);
        }
        for (let i = 0; i < admittedMs.length; i++) {
          for (let j = i; j < admittedMs.length; j++) {
            const elapsedMs = (admittedMs[j] as number) - (admittedMs[i] as number);
            expect(j - i + 1).toBeLessThanOrEqual(rule.capacity + (rule.capacity * elapsedMs) / rule.windowMs + 1e-6);
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  it('admits every request of a client that stays within the rate', () => {
    fc.assert(
      fc.property(ruleArb, fc.integer({ min: 1, max: 100 }), (rule, count) => {
        let state: BucketState | undefined;
        const msPerToken = Math.ceil(rule.windowMs / rule.capacity);
        for (let i = 0; i < count; i++) {
          const result = take(state, rule, T0 + i * msPerToken);
          state = result.state;
          expect(result.allowed).toBe(true);
        }
      }),
    );
  });

  it('gives an honest Retry-After: at least 1, a take after it succeeds, and one second less would not', () => {
    fc.assert(
      fc.property(arrivalsArb, ({ rule, timesMs }) => {
        let state: BucketState | undefined;
        for (const nowMs of timesMs) {
          const result = take(state, rule, nowMs);
          state = result.state;
          if (result.allowed) {
            expect(result.retryAfterSeconds).toBe(0);
            continue;
          }
          expect(result.retryAfterSeconds).toBeGreaterThanOrEqual(1);
          expect(take(copy(state), rule, nowMs + result.retryAfterSeconds * 1000).allowed).toBe(true);
          if (result.retryAfterSeconds > 1) {
            expect(take(copy(state), rule, nowMs + (result.retryAfterSeconds - 1) * 1000).allowed).toBe(false);
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  it('gives an honest reset time: full after resetSeconds, not full a second earlier', () => {
    fc.assert(
      fc.property(arrivalsArb, ({ rule, timesMs }) => {
        let state: BucketState | undefined;
        for (const nowMs of timesMs) {
          const result = take(state, rule, nowMs);
          state = result.state;
          expect(isFull(state, rule, nowMs + result.resetSeconds * 1000)).toBe(true);
          if (result.resetSeconds > 0) expect(isFull(state, rule, nowMs + (result.resetSeconds - 1) * 1000)).toBe(false);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('keeps the token count between 0 and capacity - 1 after a request, and reports its whole part', () => {
    fc.assert(
      fc.property(arrivalsArb, ({ rule, timesMs }) => {
        let state: BucketState | undefined;
        for (const nowMs of timesMs) {
          const result = take(state, rule, nowMs);
          state = result.state;
          expect(state.tokens).toBeGreaterThan(-1e-6);
          expect(state.tokens).toBeLessThan(result.allowed ? rule.capacity - 1 + 1e-6 : 1);
          expect(Number.isInteger(result.remaining)).toBe(true);
          expect(result.remaining).toBeLessThanOrEqual(state.tokens + 1e-9);
          expect(result.remaining).toBeGreaterThan(state.tokens - 1);
        }
      }),
    );
  });
});

describe('isFull', () => {
  it('is false right after a request and true once the missing tokens have refilled', () => {
    const state = take(undefined, AUTH, T0).state;
    expect(isFull(state, AUTH, T0)).toBe(false);
    expect(isFull(state, AUTH, T0 + 5_999)).toBe(false);
    expect(isFull(state, AUTH, T0 + 6_000)).toBe(true);
  });

  it('is true for a drained bucket only after a whole window', () => {
    const state = drained(AUTH, T0);
    expect(isFull(state, AUTH, T0 + 59_999)).toBe(false);
    expect(isFull(state, AUTH, T0 + 60_000)).toBe(true);
  });
});

describe('assertValidRule', () => {
  it('accepts the limits the server uses', () => {
    expect(() => assertValidRule(AUTH)).not.toThrow();
  });

  it('refuses a capacity or window that could never admit a request', () => {
    for (const rule of [
      { name: 'x', capacity: 0, windowMs: 60_000 },
      { name: 'x', capacity: 1.5, windowMs: 60_000 },
      { name: 'x', capacity: 10, windowMs: 0 },
      { name: 'x', capacity: 10, windowMs: Number.NaN },
    ]) {
      expect(() => assertValidRule(rule)).toThrow(RangeError);
    }
  });
});
