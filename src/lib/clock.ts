/** Time source. Everything that depends on time takes a Clock, so tests can move time by hand. */

/** Milliseconds since the Unix epoch, like `Date.now()`. */
export interface Clock {
  now(): number;
}

/** The wall clock, for production. */
export const systemClock: Clock = { now: () => Date.now() };

/** A clock that moves only when told to; for tests. */
export class ManualClock implements Clock {
  constructor(private ms: number = Date.UTC(2026, 0, 15, 10, 30, 0)) {}
  now(): number {
    return this.ms;
  }
  /** Moves the clock forward by `ms` milliseconds. */
  advance(ms: number): void {
    this.ms += ms;
  }
}

/** Whole Unix seconds of a clock reading. */
export function unixSeconds(ms: number): number {
  return Math.floor(ms / 1000);
}

/** RFC 3339 UTC with a `Z` suffix and whole seconds, as the contract requires (`2024-01-15T10:30:00Z`). */
export function rfc3339(unixSecondsValue: number): string {
  return new Date(unixSecondsValue * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}
