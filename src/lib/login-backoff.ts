/** Per-account login backoff: an exponential, capped lockout after repeated failed logins, in bounded memory. */

/** The failure that starts the lockout: the 5th consecutive one locks for 1 s. */
export const BACKOFF_START_FAILURES = 5;
/** Longest lockout, in seconds (15 minutes); the lock is never permanent. */
export const BACKOFF_MAX_SECONDS = 900;
/**
 * An account with no failure for this long is forgotten (its count restarts at 0). Far longer than
 * the longest lockout on purpose: forgetting sooner would hand a patient attacker a fresh run of
 * cheap attempts (4 free, then 1 s, 2 s, ...) each time, instead of one attempt per 15 minutes.
 */
export const BACKOFF_FORGET_MS = 24 * 60 * 60 * 1000;
/** Default cap on tracked accounts. */
export const DEFAULT_MAX_ACCOUNTS = 100_000;

/** Lockout in seconds after the `failures`-th consecutive failure: 0 before the 5th, then 1, 2, 4, ... up to 900. */
export function lockoutSeconds(failures: number): number {
  if (failures < BACKOFF_START_FAILURES) return 0;
  return Math.min(BACKOFF_MAX_SECONDS, 2 ** (failures - BACKOFF_START_FAILURES));
}

/** Whether a login attempt may go ahead; when not, the Retry-After in whole seconds (at least 1). */
export interface BackoffCheck {
  allowed: boolean;
  retryAfterSeconds: number;
}

/** Tuning for a LoginBackoff. */
export interface LoginBackoffOptions {
  /** Hard cap on tracked accounts. */
  maxEntries?: number;
  /** Forget an account after this long without a failure. */
  forgetAfterMs?: number;
}

interface FailureRecord {
  failures: number;
  lastFailureMs: number;
}

/**
 * Consecutive failed logins per account, whatever the source address.
 *
 * Memory: records are kept in a Map ordered by last failure (a failure moves its account to the end),
 * so forgetting stale accounts pops them off the front: amortised O(1), no full sweep. If the map is
 * still at `maxEntries`, the account whose last failure is oldest is evicted. A shared overflow record
 * (as for IP buckets) would be wrong here: it would let an attacker lock every other account out.
 * Eviction does let an attacker reset one victim's count, but only by failing logins against
 * `maxEntries` other accounts first, each of those held back by the per-IP auth limit.
 */
export class LoginBackoff {
  readonly maxEntries: number;
  readonly forgetAfterMs: number;
  private readonly records = new Map<string, FailureRecord>();

  constructor(options: LoginBackoffOptions = {}) {
    this.maxEntries = options.maxEntries ?? DEFAULT_MAX_ACCOUNTS;
    this.forgetAfterMs = options.forgetAfterMs ?? BACKOFF_FORGET_MS;
    if (!Number.isInteger(this.maxEntries) || this.maxEntries < 1) throw new RangeError('maxEntries must be a positive integer');
    if (!(this.forgetAfterMs > BACKOFF_MAX_SECONDS * 1000)) {
      throw new RangeError('forgetAfterMs must be longer than the longest lockout');
    }
  }

  /** Whether `account` may attempt a login at `nowMs`. Does not count as an attempt. */
  check(account: string, nowMs: number): BackoffCheck {
    const record = this.records.get(account);
    // A stale record needs no test here: forgetAfterMs outlasts the longest lockout (see the constructor).
    if (record === undefined) return { allowed: true, retryAfterSeconds: 0 };
    const lockedUntilMs = record.lastFailureMs + lockoutSeconds(record.failures) * 1000;
    if (nowMs >= lockedUntilMs) return { allowed: true, retryAfterSeconds: 0 };
    // The cap matters only if the clock went backwards: the promise is never more than 15 minutes.
    const retryAfterSeconds = Math.min(BACKOFF_MAX_SECONDS, Math.max(1, Math.ceil((lockedUntilMs - nowMs) / 1000)));
    return { allowed: false, retryAfterSeconds };
  }

  /** Counts a failed login for `account` at `nowMs`. Call it only for attempts that `check` allowed. */
  recordFailure(account: string, nowMs: number): void {
    const previous = this.records.get(account);
    // Delete first so the re-insertion below lands at the end: the Map stays ordered by last failure.
    this.records.delete(account);
    this.forgetStale(nowMs);
    if (this.records.size >= this.maxEntries) this.evictOldest();
    const fresh = previous === undefined || this.isStale(previous, nowMs);
    this.records.set(account, {
      failures: fresh ? 1 : previous.failures + 1,
      // Never move back in time, so the order of the Map holds even if the clock does not.
      lastFailureMs: fresh ? nowMs : Math.max(previous.lastFailureMs, nowMs),
    });
  }

  /**
   * Admits a login attempt and counts it as failed before its password is even checked; a success
   * then clears the count (`recordSuccess`). Counting attempts in flight is what makes the rule hold
   * under concurrency: checking first and counting after the ~100 ms hash let every attempt of a
   * burst pass the gate. A burst of any size thus gets at most BACKOFF_START_FAILURES verifications
   * before the lock, and one more per lockout period after it.
   */
  reserve(account: string, nowMs: number): BackoffCheck {
    const gate = this.check(account, nowMs);
    if (gate.allowed) this.recordFailure(account, nowMs);
    return gate;
  }

  /** A successful login: the count starts again from zero. */
  recordSuccess(account: string): void {
    this.records.delete(account);
  }

  /** Accounts currently tracked. */
  get size(): number {
    return this.records.size;
  }

  private isStale(record: FailureRecord, nowMs: number): boolean {
    return nowMs - record.lastFailureMs >= this.forgetAfterMs;
  }

  private forgetStale(nowMs: number): void {
    for (const [account, record] of this.records) {
      if (!this.isStale(record, nowMs)) break;
      this.records.delete(account);
    }
  }

  private evictOldest(): void {
    const oldest = this.records.keys().next();
    if (!oldest.done) this.records.delete(oldest.value);
  }
}
