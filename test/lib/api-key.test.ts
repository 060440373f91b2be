/** The API key codec: shape, checksum, hashing. */
import { describe, expect, it } from 'bun:test';
import fc from 'fast-check';
import { API_KEY_LENGTH, apiKeyPrefix, generateApiKey, hashApiKey, isWellFormedApiKey } from '../../src/lib/api-key.ts';

const HEX = '0123456789abcdef';

describe('generateApiKey', () => {
  it('makes exp_k1_ + 40 random hex + 8 hex CRC32 of those 40', () => {
    const key = generateApiKey();
    expect(key).toMatch(/^exp_k1_[0-9a-f]{48}$/);
    expect(key.length).toBe(API_KEY_LENGTH);
    const secret = key.slice(7, 47);
    expect(key.slice(47)).toBe((Bun.hash.crc32(secret) >>> 0).toString(16).padStart(8, '0'));
  });

  it('never repeats itself in 10,000 keys', () => {
    const keys = new Set(Array.from({ length: 10_000 }, generateApiKey));
    expect(keys.size).toBe(10_000);
  });

  it('always produces keys that validate', () => {
    for (let i = 0; i < 1000; i++) expect(isWellFormedApiKey(generateApiKey())).toBe(true);
  });
});

describe('isWellFormedApiKey', () => {
  it('refuses every single-character change of a key', () => {
    fc.assert(
      fc.property(fc.nat({ max: API_KEY_LENGTH - 1 }), fc.constantFrom(...`${HEX}ABCDEFxyz_-`), (position, replacement) => {
        const key = generateApiKey();
        fc.pre(key[position] !== replacement);
        const changed = key.slice(0, position) + replacement + key.slice(position + 1);
        return !isWellFormedApiKey(changed);
      }),
      { numRuns: 5000 },
    );
  });

  it('refuses every truncation and every extension', () => {
    const key = generateApiKey();
    for (let length = 0; length < key.length; length++) expect(isWellFormedApiKey(key.slice(0, length))).toBe(false);
    expect(isWellFormedApiKey(`${key}0`)).toBe(false);
    expect(isWellFormedApiKey(` ${key}`)).toBe(false);
  });

  it('refuses arbitrary strings', () => {
    fc.assert(fc.property(fc.string({ maxLength: 80 }), (s) => !isWellFormedApiKey(s)), { numRuns: 2000 });
  });

  it('refuses upper-case hex', () => {
    let key = generateApiKey();
    while (!/[a-f]/.test(key.slice(7))) key = generateApiKey();
    expect(isWellFormedApiKey(key.slice(0, 7) + key.slice(7).toUpperCase())).toBe(false);
  });
});

describe('hashApiKey and apiKeyPrefix', () => {
  it('hash is the hex SHA-256 of the whole key; prefix is its first 13 characters', () => {
    const key = generateApiKey();
    expect(hashApiKey(key)).toBe(new Bun.CryptoHasher('sha256').update(key).digest('hex'));
    expect(apiKeyPrefix(key)).toBe(key.slice(0, 13));
    expect(apiKeyPrefix(key)).toMatch(/^exp_k1_[0-9a-f]{6}$/);
  });
});
