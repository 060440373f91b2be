/**
 * Password rules and hashing. argon2id through `Bun.password` (runs off the event loop), with a bound
 * on concurrent hashes because each one takes ~64 MiB: a login flood must not exhaust memory.
 */
import commonPasswordsText from './data/common-passwords.txt' with { type: 'text' };
import { Semaphore } from './semaphore.ts';

/** The contract's hard ceiling on password length, in characters. */
export const PASSWORD_MAX_LENGTH = 1024;
/** The contract's floor; the configured minimum may only raise it. */
export const PASSWORD_MIN_LENGTH_FLOOR = 8;
/** At most this many hashes run at once: 4 × 64 MiB = 256 MiB of argon2 memory at the peak. */
export const MAX_CONCURRENT_HASHES = 4;

/** argon2id cost. Production uses Bun's defaults (64 MiB, t=2); tests may pass cheaper ones. */
export interface HashCost {
  memoryCost: number;
  timeCost: number;
}
export const DEFAULT_HASH_COST: HashCost = { memoryCost: 65536, timeCost: 2 };

let commonPasswords: Set<string> | undefined;

/** True when the password is on the embedded list of the 20,000 most common ones (case-insensitive). */
export function isCommonPassword(password: string): boolean {
  // Built on first use so start-up does not pay for it.
  commonPasswords ??= new Set(commonPasswordsText.split('\n').filter((line) => line.length > 0));
  return commonPasswords.has(password.toLowerCase());
}

/** Length in characters (Unicode code points), not bytes, as the contract counts it. */
export function passwordLength(password: string): number {
  let count = 0;
  for (const _ of password) count++;
  return count;
}

/**
 * The first password rule `password` breaks, as a message naming `field`, or undefined when it passes.
 * `current` is the account's current password when changing it (the new one must differ).
 */
export function passwordRuleViolation(
  password: string,
  field: string,
  minLength: number,
  current?: string,
): string | undefined {
  // Bun.password turns each lone surrogate into U+FFFD before hashing, so an ill-formed password would
  // also be matched by any other lone surrogate (or U+FFFD) at the same place.
  if (!password.isWellFormed()) return `${field} must be valid Unicode text (it holds a lone surrogate)`;
  const length = passwordLength(password);
  if (length < minLength) return `${field} must be at least ${minLength} characters`;
  if (length > PASSWORD_MAX_LENGTH) return `${field} must be at most ${PASSWORD_MAX_LENGTH} characters`;
  if (current !== undefined && password === current) return `${field} must differ from the current password`;
  if (isCommonPassword(password)) return `${field} is too common; choose a less predictable one`;
  return undefined;
}

/**
 * The dummy hash for DEFAULT_HASH_COST: argon2id of a random password that was thrown away, made
 * once and kept here so start-up does not spend ~200 ms of CPU hashing it. It protects nothing
 * (no password matches it); it only makes an unknown email cost one verification at the real cost.
 */
const DEFAULT_COST_DUMMY_HASH =
  '$argon2id$v=19$m=65536,t=2,p=1$CO4YjUrASYbB2yC3F/wramx4Hhae0CZMHEfmH0xoKAU$w4ERpOn3SExiR6jUKNUNv0I61dqD7auuw4by9fjHL2U';

/** Hashes and verifies passwords, never more than MAX_CONCURRENT_HASHES at once. */
export class PasswordHasher {
  private readonly slots = new Semaphore(MAX_CONCURRENT_HASHES);
  private dummyHash: Promise<string> | undefined;

  constructor(private readonly cost: HashCost = DEFAULT_HASH_COST) {}

  /** argon2id hash in PHC string form. Passwords are NFC-normalised so the same text typed anywhere matches. */
  hash(password: string): Promise<string> {
    return this.slots.run(() =>
      Bun.password.hash(password.normalize('NFC'), { algorithm: 'argon2id', ...this.cost }),
    );
  }

  /** True when `password` matches `hash`. An ill-formed password never matches (see passwordRuleViolation). */
  verify(password: string, hash: string): Promise<boolean> {
    if (!password.isWellFormed()) return Promise.resolve(false);
    return this.slots.run(() => Bun.password.verify(password.normalize('NFC'), hash));
  }

  /**
   * Verifies against a throw-away hash of the same cost and answers false: an unknown email costs
   * exactly what a wrong password costs, so timing does not reveal which accounts exist.
   */
  async verifyDummy(password: string): Promise<false> {
    await this.verify(password, await this.ensureDummyHash());
    return false;
  }

  /** Makes the dummy hash ahead of the first login (the default cost has it ready); call at start-up. */
  ensureDummyHash(): Promise<string> {
    const isDefaultCost = this.cost.memoryCost === DEFAULT_HASH_COST.memoryCost && this.cost.timeCost === DEFAULT_HASH_COST.timeCost;
    this.dummyHash ??= isDefaultCost ? Promise.resolve(DEFAULT_COST_DUMMY_HASH) : this.hash(crypto.randomUUID());
    return this.dummyHash;
  }

  /** Hashes running and waiting; for metrics and tests. */
  get load(): { running: number; queued: number } {
    return { running: this.slots.running, queued: this.slots.queued };
  }
}
