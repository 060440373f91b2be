/** Password rules and the bounded argon2id hasher. */
import { describe, expect, it } from 'bun:test';
import { DEFAULT_HASH_COST, isCommonPassword, passwordLength, passwordRuleViolation, PasswordHasher, MAX_CONCURRENT_HASHES } from '../../src/lib/password.ts';
import commonPasswordsText from '../../src/lib/data/common-passwords.txt' with { type: 'text' };

describe('isCommonPassword', () => {
  it('knows thousands of common passwords, whatever their case', () => {
    const list = commonPasswordsText.split('\n').filter(Boolean);
    expect(list.length).toBeGreaterThanOrEqual(10_000);
    for (const pw of ['password', 'PASSWORD1', '12345678', 'qwertyuiop', 'iloveyou', list[list.length - 1]!]) expect(isCommonPassword(pw)).toBe(true);
  });

  it('lets an uncommon password through', () => {
    expect(isCommonPassword('violet-tractor-sings-42')).toBe(false);
  });
});

describe('passwordRuleViolation', () => {
  it('counts code points, not bytes or UTF-16 units', () => {
    expect(passwordLength('🦓🦓')).toBe(2);
    expect(passwordRuleViolation('ééééééé', 'password', 8)).toContain('at least 8');
    expect(passwordRuleViolation('éééééééé-unique', 'password', 8)).toBeUndefined();
  });

  it('enforces the floor, the ceiling, difference from the current one and the common list, in that order', () => {
    expect(passwordRuleViolation('short', 'password', 8)).toBe('password must be at least 8 characters');
    expect(passwordRuleViolation('x'.repeat(1025), 'password', 8)).toBe('password must be at most 1024 characters');
    expect(passwordRuleViolation('x'.repeat(1024), 'password', 8)).toBeUndefined();
    expect(passwordRuleViolation('same-as-before-1', 'new_password', 8, 'same-as-before-1')).toBe('new_password must differ from the current password');
    expect(passwordRuleViolation('password1', 'password', 8)).toContain('too common');
  });
});

describe('PasswordHasher', () => {
  it('hashes with argon2id and verifies only the right password', async () => {
    const hasher = new PasswordHasher({ memoryCost: 256, timeCost: 1 });
    const hash = await hasher.hash('right-horse-battery');
    expect(hash.startsWith('$argon2id$v=19$m=256,t=1')).toBe(true);
    expect(await hasher.verify('right-horse-battery', hash)).toBe(true);
    expect(await hasher.verify('wrong-horse-battery', hash)).toBe(false);
  });

  it('uses 64 MiB argon2id by default', async () => {
    const hash = await new PasswordHasher().hash('right-horse-battery');
    expect(hash.startsWith('$argon2id$v=19$m=65536,t=2')).toBe(true);
  });

  it('treats canonically equal Unicode spellings as the same password', async () => {
    const hasher = new PasswordHasher({ memoryCost: 256, timeCost: 1 });
    const composed = 'caf\u00e9-long-password';
    const decomposed = 'cafe\u0301-long-password';
    expect(await hasher.verify(decomposed, await hasher.hash(composed))).toBe(true);
  });

  it(`never runs more than ${MAX_CONCURRENT_HASHES} hashes at once`, async () => {
    const hasher = new PasswordHasher({ memoryCost: 256, timeCost: 1 });
    let peak = 0;
    const original = Bun.password.hash;
    Bun.password.hash = (async (...args: Parameters<typeof Bun.password.hash>) => {
      peak = Math.max(peak, hasher.load.running);
      return original(...args);
    }) as typeof Bun.password.hash;
    try {
      await Promise.all(Array.from({ length: 20 }, (_, i) => hasher.hash(`parallel-password-${i}`)));
    } finally {
      Bun.password.hash = original;
    }
    expect(peak).toBe(MAX_CONCURRENT_HASHES);
    expect(hasher.load).toEqual({ running: 0, queued: 0 });
  });

  it('verifyDummy answers false after real work', async () => {
    const hasher = new PasswordHasher({ memoryCost: 256, timeCost: 1 });
    expect(await hasher.verifyDummy('anything-at-all')).toBe(false);
  });

  it('has a ready-made dummy hash for the default cost, made at exactly that cost', async () => {
    const dummy = await new PasswordHasher().ensureDummyHash();
    const { memoryCost, timeCost } = DEFAULT_HASH_COST;
    expect(dummy).toStartWith(`$argon2id$v=19$m=${memoryCost},t=${timeCost},p=1$`);
  });

  it('hashes a fresh dummy for any other cost', async () => {
    const dummy = await new PasswordHasher({ memoryCost: 256, timeCost: 1 }).ensureDummyHash();
    expect(dummy).toStartWith('$argon2id$v=19$m=256,t=1,p=1$');
  });
});
