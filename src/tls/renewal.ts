/** When to renew a certificate and when to try again after a failure: pure arithmetic, time passed in. */

/** Renew once this share of a certificate's life has passed (Let's Encrypt's advice: 90-day certificates at 60 days). */
export const RENEW_AT_FRACTION_OF_LIFE = 2 / 3;

/** How failed orders are retried: the delay doubles from `baseMs` at each failure, up to `maxMs`. */
export interface RetryPolicy {
  baseMs: number;
  maxMs: number;
}

/**
 * Production: 1 min, 2, 4, ... then hourly. An hour stays far inside Let's Encrypt's limit of 5 failed
 * validations per name per account per hour, and an outage of the CA is picked up within the hour.
 */
export const DEFAULT_RETRY: RetryPolicy = { baseMs: 60_000, maxMs: 60 * 60_000 };

/** The moment to renew a certificate valid from `notBeforeMs` to `notAfterMs`. */
export function renewalDueMs(notBeforeMs: number, notAfterMs: number): number {
  return notBeforeMs + Math.floor((notAfterMs - notBeforeMs) * RENEW_AT_FRACTION_OF_LIFE);
}

/** The wait before the next attempt after `failures` (1, 2, ...) failures in a row. */
export function retryDelayMs(failures: number, policy: RetryPolicy): number {
  const exponent = Math.min(Math.max(failures - 1, 0), 30);
  return Math.min(policy.baseMs * 2 ** exponent, policy.maxMs);
}
