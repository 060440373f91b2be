/**
 * Rate limiting on top of the pure token buckets: the auth class (register, login; per client IP),
 * the general class (every other /api/v1 route; per account when a valid credential is presented,
 * else per IP), RateLimit headers (IETF httpapi ratelimit-headers draft 10) and 429 answers.
 * /health and /docs never pass through here. Tunnel traffic will not either (it is unlimited).
 */
import type { Clock } from '../lib/clock.ts';
import { BucketStore } from '../lib/bucket-store.ts';
import type { TakeResult } from '../lib/token-bucket.ts';
import { AppError, MESSAGES } from './errors.ts';

/** The limited classes. */
export type LimitClass = 'auth' | 'general';

/** Every bucket refills its whole capacity over this window. */
export const RATE_WINDOW_MS = 60_000;

/** Requests per minute per class; 0 turns a class off. */
export interface RateLimitSettings {
  authPerMinute: number;
  apiPerMinute: number;
}

/** The 429 answer, with the honest wait until a token exists. */
export function rateLimited(retryAfterSeconds: number): AppError {
  return new AppError(429, 'rate_limited', MESSAGES.rateLimited, { 'Retry-After': String(retryAfterSeconds) });
}

/** The guard's 429; its Retry-After goes into the answer's headers separately. */
const RATE_LIMITED = new AppError(429, 'rate_limited', MESSAGES.rateLimited);

/** Buckets per class, and the headers that describe them. */
export class RateLimiter {
  private readonly stores: Partial<Record<LimitClass, BucketStore>> = {};
  private readonly policies: Partial<Record<LimitClass, string>> = {};

  constructor(
    private readonly settings: RateLimitSettings,
    private readonly clock: Clock,
  ) {
    const limits: Record<LimitClass, number> = { auth: settings.authPerMinute, general: settings.apiPerMinute };
    for (const cls of ['auth', 'general'] as const) {
      if (limits[cls] === 0) continue;
      this.stores[cls] = new BucketStore({ name: cls, capacity: limits[cls], windowMs: RATE_WINDOW_MS });
      this.policies[cls] = `"${cls}";q=${limits[cls]};w=${RATE_WINDOW_MS / 1000}`;
    }
  }

  /**
   * Takes a token for `key` and writes the headers; returns the 429 to answer when the bucket is empty
   * (Retry-After is written with the other headers), undefined when the request may go on. Returned,
   * not thrown, and the same error every time: a flood receives it, so it costs no allocation.
   */
  refusal(cls: LimitClass, key: string, headers: Record<string, unknown>): AppError | undefined {
    const result = this.record(cls, key, headers);
    if (result === undefined || result.allowed) return undefined;
    headers['retry-after'] = String(result.retryAfterSeconds);
    return RATE_LIMITED;
  }

  /** Takes a token for `key` (the request counts) and writes the headers, without refusing. */
  record(cls: LimitClass, key: string, headers: Record<string, unknown>): TakeResult | undefined {
    const store = this.stores[cls];
    if (!store) return undefined;
    const result = store.take(key, this.clock.now());
    headers['ratelimit-policy'] = this.policies[cls];
    headers['ratelimit'] = `"${cls}";r=${result.remaining};t=${result.resetSeconds}`;
    return result;
  }

  /** Buckets held per class; for benchmarks and tests of bounded memory. */
  get sizes(): Record<LimitClass, number> {
    return { auth: this.stores.auth?.size ?? 0, general: this.stores.general?.size ?? 0 };
  }
}
