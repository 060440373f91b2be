/** A counting semaphore: bounds how many async jobs of one kind run at once. */

/** Runs at most `limit` jobs at once; the others wait in arrival order. */
export class Semaphore {
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new Error('Semaphore limit must be a positive integer');
  }

  /** Runs `job` once a place is free, and frees the place when it settles. */
  async run<T>(job: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.active++;
    try {
      return await job();
    } finally {
      const next = this.waiting.shift();
      // Hand the place straight to the next waiter, so `active` never dips and lets a newcomer jump the queue.
      if (next) next();
      else this.active--;
    }
  }

  /** Jobs running now; for tests and metrics. */
  get running(): number {
    return this.active;
  }

  /** Jobs waiting for a place. */
  get queued(): number {
    return this.waiting.length;
  }
}
