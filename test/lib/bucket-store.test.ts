/** Per-key bucket store: independent keys, lazy sweeping of full buckets, and the hard cap with its overflow bucket. */
import { describe, expect, it } from 'bun:test';
import fc from 'fast-check';
import { BucketStore } from '../../src/lib/bucket-store.ts';
import { take, type BucketRule, type BucketState } from '../../src/lib/token-bucket.ts';

const AUTH: BucketRule = { name: 'auth', capacity: 10, windowMs: 60_000 };
const T0 = 1_700_000_000_000;

function drain(store: BucketStore, key: string, nowMs: number): void {
  for (let i = 0; i < store.rule.capacity; i++) store.take(key, nowMs);
}

describe('BucketStore.take', () => {
  it('refuses the 11th request in a minute for one key and leaves other keys alone', () => {
    const store = new BucketStore(AUTH);
    drain(store, '10.0.0.1', T0);
    expect(store.take('10.0.0.1', T0 + 1_000).allowed).toBe(false);
    const other = store.take('10.0.0.2', T0 + 1_000);
    expect(other.allowed).toBe(true);
    expect(other.remaining).toBe(9);
    expect(store.size).toBe(2);
  });

  it('answers exactly like one bucket per key kept forever, while under the cap', () => {
    // Sweeping on every take is the harshest setting: it must never change an answer.
    const keyArb = fc.constantFrom('a', 'b', 'c', 'd');
    const stepArb = fc.tuple(keyArb, fc.integer({ min: 0, max: 15_000 }));
    fc.assert(
      fc.property(fc.array(stepArb, { maxLength: 200 }), (steps) => {
        const store = new BucketStore(AUTH, { sweepEveryTakes: 1 });
        const reference = new Map<string, BucketState>();
        let nowMs = T0;
        for (const [key, gapMs] of steps) {
          nowMs += gapMs;
          const expected = take(reference.get(key), AUTH, nowMs);
          reference.set(key, expected.state);
          const actual = store.take(key, nowMs);
          expect({ ...actual, state: undefined }).toEqual({ ...expected, state: undefined });
        }
      }),
    );
  });
});

describe('BucketStore memory', () => {
  it('drops full idle buckets on a sweep and keeps the ones still refilling', () => {
    const store = new BucketStore(AUTH);
    store.take('idle', T0);
    drain(store, 'busy', T0 + 50_000);
    expect(store.sweep(T0 + 56_000)).toBe(1);
    expect(store.size).toBe(1);
    expect(store.take('busy', T0 + 56_000).allowed).toBe(true);
    expect(store.take('busy', T0 + 56_000).allowed).toBe(false);
  });

  it('sweeps by itself after sweepEveryTakes takes', () => {
    const store = new BucketStore(AUTH, { sweepEveryTakes: 100 });
    for (let i = 0; i < 50; i++) store.take(`idle-${i}`, T0);
    // 6 s later each idle bucket has its one token back; 50 more takes reach the sweep.
    for (let i = 0; i < 50; i++) store.take('busy', T0 + 6_000);
    expect(store.size).toBe(1);
  });

  it('sweeps by itself once a window has passed, however few the takes', () => {
    const store = new BucketStore(AUTH);
    for (let i = 0; i < 50; i++) store.take(`idle-${i}`, T0);
    store.take('late', T0 + 60_000);
    expect(store.size).toBe(1);
  });

  it('does not grow beyond maxEntries under a flood of 1,000,000 distinct keys', () => {
    const store = new BucketStore(AUTH, { maxEntries: 1_000, sweepEveryTakes: 1_000 });
    let largestSize = 0;
    for (let i = 0; i < 1_000_000; i++) {
      store.take(`flood-${i}`, T0 + Math.floor(i / 100));
      if (store.size > largestSize) largestSize = store.size;
    }
    expect(largestSize).toBe(1_000);
  });

  it('keeps an in-window client state through a flood, so flooding cannot reset a bucket', () => {
    const store = new BucketStore(AUTH, { maxEntries: 1_000, sweepEveryTakes: 1_000 });
    drain(store, 'attacker', T0);
    const reference = take(undefined, AUTH, T0);
    for (let i = 1; i < AUTH.capacity; i++) take(reference.state, AUTH, T0);
    for (let i = 0; i < 200_000; i++) store.take(`flood-${i}`, T0 + Math.floor(i / 100));
    const afterFlood = T0 + 2_000;
    expect(store.take('attacker', afterFlood)).toEqual(take(reference.state, AUTH, afterFlood));
    expect(store.take('attacker', afterFlood).allowed).toBe(false);
  });

  it('lets new keys share one bucket once at the cap, so together they get at most capacity requests', () => {
    const store = new BucketStore(AUTH, { maxEntries: 100 });
    for (let i = 0; i < 100; i++) store.take(`early-${i}`, T0);
    let admitted = 0;
    for (let i = 0; i < 10_000; i++) if (store.take(`late-${i}`, T0).allowed) admitted++;
    expect(admitted).toBe(AUTH.capacity);
    expect(store.size).toBe(100);
  });

  it('gives a new key its own full bucket again once idle buckets are swept', () => {
    const store = new BucketStore(AUTH, { maxEntries: 100 });
    for (let i = 0; i < 100; i++) store.take(`early-${i}`, T0);
    for (let i = 0; i < 100; i++) store.take(`late-${i}`, T0);
    const result = store.take('newcomer', T0 + 60_000);
    expect(result.remaining).toBe(9);
    expect(store.size).toBe(1);
  });

  it('refuses a cap or sweep interval that is not a positive integer', () => {
    expect(() => new BucketStore(AUTH, { maxEntries: 0 })).toThrow(RangeError);
    expect(() => new BucketStore(AUTH, { sweepEveryTakes: 0.5 })).toThrow(RangeError);
    expect(() => new BucketStore({ ...AUTH, capacity: 0 })).toThrow(RangeError);
  });
});
