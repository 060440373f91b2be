/** Per-account login backoff: the 1, 2, 4 ... 900 s sequence, reset on success, never permanent, bounded memory. */
import { describe, expect, it } from 'bun:test';
import fc from 'fast-check';
import {
  BACKOFF_MAX_SECONDS,
  BACKOFF_START_FAILURES,
  LoginBackoff,
  lockoutSeconds,
} from '../../src/lib/login-backoff.ts';

const T0 = 1_700_000_000_000;
const HOUR_MS = 60 * 60 * 1000;

/** Records `count` failures, each as soon as the previous lockout allows; returns the time of the last one. */
function failRepeatedly(backoff: LoginBackoff, account: string, count: number, startMs = T0): number {
  let nowMs = startMs;
  for (let i = 0; i < count; i++) {
    const check = backoff.check(account, nowMs);
    nowMs += check.retryAfterSeconds * 1000;
    backoff.recordFailure(account, nowMs);
  }
  return nowMs;
}

describe('lockoutSeconds', () => {
  it('is 0 for the first four failures, then 1, 2, 4, ... capped at 900', () => {
    const sequence = Array.from({ length: 20 }, (_, i) => lockoutSeconds(i + 1));
    expect(sequence).toEqual([0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900, 900, 900, 900, 900]);
    expect(lockoutSeconds(10_000)).toBe(BACKOFF_MAX_SECONDS);
    expect(BACKOFF_START_FAILURES).toBe(5);
  });
});

describe('LoginBackoff', () => {
  it('allows the attempt after each of the first four failures', () => {
    const backoff = new LoginBackoff();
    for (let i = 0; i < 4; i++) {
      backoff.recordFailure('alice', T0);
      expect(backoff.check('alice', T0)).toEqual({ allowed: true, retryAfterSeconds: 0 });
    }
  });

  it('locks the account for 1 s after the 5th consecutive failure', () => {
    const backoff = new LoginBackoff();
    const lastMs = failRepeatedly(backoff, 'alice', 5);
    expect(backoff.check('alice', lastMs)).toEqual({ allowed: false, retryAfterSeconds: 1 });
    expect(backoff.check('alice', lastMs + 999)).toEqual({ allowed: false, retryAfterSeconds: 1 });
    expect(backoff.check('alice', lastMs + 1_000)).toEqual({ allowed: true, retryAfterSeconds: 0 });
  });

  it('answers Retry-After 1, 2, 4, ... 512, then 900 s, capped', () => {
    const backoff = new LoginBackoff();
    let nowMs = failRepeatedly(backoff, 'alice', 4);
    const retries: number[] = [];
    for (let n = 5; n <= 18; n++) {
      nowMs += backoff.check('alice', nowMs).retryAfterSeconds * 1000;
      backoff.recordFailure('alice', nowMs);
      retries.push(backoff.check('alice', nowMs).retryAfterSeconds);
    }
    expect(retries).toEqual([1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900, 900, 900]);
  });

  it('gives an honest Retry-After: locked until it has passed, open once it has', () => {
    fc.assert(
      fc.property(fc.integer({ min: 5, max: 30 }), fc.integer({ min: 0, max: 1_000_000 }), (failures, waitedMs) => {
        const backoff = new LoginBackoff();
        const lastMs = failRepeatedly(backoff, 'alice', failures);
        const nowMs = lastMs + waitedMs;
        const check = backoff.check('alice', nowMs);
        const lockMs = lockoutSeconds(failures) * 1000;
        expect(check.allowed).toBe(waitedMs >= lockMs);
        if (!check.allowed) {
          expect(check.retryAfterSeconds).toBeGreaterThanOrEqual(1);
          expect(backoff.check('alice', nowMs + check.retryAfterSeconds * 1000).allowed).toBe(true);
        }
      }),
    );
  });

  it('starts the count again after a successful login', () => {
    const backoff = new LoginBackoff();
    const lastMs = failRepeatedly(backoff, 'alice', 12);
    backoff.recordSuccess('alice');
    expect(backoff.check('alice', lastMs).allowed).toBe(true);
    backoff.recordFailure('alice', lastMs);
    expect(backoff.check('alice', lastMs).allowed).toBe(true);
    expect(backoff.size).toBe(1);
  });

  it('is never permanent: after 200 failures the next attempt is allowed 900 s after the last one', () => {
    const backoff = new LoginBackoff();
    const lastMs = failRepeatedly(backoff, 'alice', 200);
    expect(backoff.check('alice', lastMs + 899_999).allowed).toBe(false);
    expect(backoff.check('alice', lastMs + 900_000).allowed).toBe(true);
  });

  it('counts each account on its own', () => {
    const backoff = new LoginBackoff();
    const lastMs = failRepeatedly(backoff, 'alice', 10);
    expect(backoff.check('alice', lastMs).allowed).toBe(false);
    expect(backoff.check('bob', lastMs).allowed).toBe(true);
  });

  it('forgets an account after forgetAfterMs without a failure, and its count restarts', () => {
    const backoff = new LoginBackoff({ forgetAfterMs: HOUR_MS });
    const lastMs = failRepeatedly(backoff, 'alice', 10);
    const later = lastMs + HOUR_MS;
    backoff.recordFailure('bob', later);
    expect(backoff.size).toBe(1);
    backoff.recordFailure('alice', later);
    expect(backoff.check('alice', later).allowed).toBe(true);
  });

  it('restarts the count of an account that fails again after forgetAfterMs', () => {
    const backoff = new LoginBackoff({ forgetAfterMs: HOUR_MS });
    const lastMs = failRepeatedly(backoff, 'alice', 10);
    backoff.recordFailure('alice', lastMs + HOUR_MS);
    expect(backoff.check('alice', lastMs + HOUR_MS).allowed).toBe(true);
  });

  it('forgets stale accounts even behind one that failed again recently', () => {
    const backoff = new LoginBackoff({ forgetAfterMs: HOUR_MS });
    backoff.recordFailure('alice', T0);
    backoff.recordFailure('bob', T0 + 60_000);
    backoff.recordFailure('alice', T0 + 30 * 60_000);
    backoff.recordFailure('carol', T0 + 70 * 60_000);
    expect(backoff.size).toBe(2);
  });

  it('remembers the count until forgetAfterMs has passed', () => {
    const backoff = new LoginBackoff({ forgetAfterMs: HOUR_MS });
    const lastMs = failRepeatedly(backoff, 'alice', 10);
    backoff.recordFailure('alice', lastMs + HOUR_MS - 1);
    expect(backoff.check('alice', lastMs + HOUR_MS - 1)).toEqual({ allowed: false, retryAfterSeconds: 64 });
  });

  it('evicts the account whose last failure is oldest when at maxEntries', () => {
    const backoff = new LoginBackoff({ maxEntries: 100 });
    const aliceLastMs = failRepeatedly(backoff, 'alice', 6);
    for (let i = 0; i < 99; i++) backoff.recordFailure(`user-${i}`, aliceLastMs + 1);
    // A new failure moves alice to the back: the 99 users are now older and go first.
    backoff.recordFailure('alice', aliceLastMs + 2);
    for (let i = 0; i < 99; i++) backoff.recordFailure(`flood-${i}`, aliceLastMs + 3);
    expect(backoff.size).toBe(100);
    expect(backoff.check('alice', aliceLastMs + 3).allowed).toBe(false);
    backoff.recordFailure('flood-99', aliceLastMs + 3);
    expect(backoff.check('alice', aliceLastMs + 3).allowed).toBe(true);
  });

  it('does not grow beyond maxEntries under a flood of distinct accounts', () => {
    const backoff = new LoginBackoff({ maxEntries: 1_000 });
    let largestSize = 0;
    for (let i = 0; i < 100_000; i++) {
      backoff.recordFailure(`flood-${i}`, T0 + i);
      largestSize = Math.max(largestSize, backoff.size);
    }
    expect(largestSize).toBe(1_000);
  });

  it('refuses settings that would break its promises', () => {
    expect(() => new LoginBackoff({ maxEntries: 0 })).toThrow(RangeError);
    expect(() => new LoginBackoff({ forgetAfterMs: BACKOFF_MAX_SECONDS * 1000 })).toThrow(RangeError);
  });
});
