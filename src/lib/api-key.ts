/**
 * The API key codec: `exp_k1_` + 40 hex from a CSPRNG (160 bits) + 8 hex CRC32 of those 40.
 * The checksum lets a mistyped or truncated key be refused without touching the database, and lets
 * secret scanners recognise leaked keys. Only the SHA-256 of a key is ever stored.
 */

/** Product prefix `exp` and key format version `k1`. */
export const API_KEY_PREFIX = 'exp_k1_';
const SECRET_HEX_LENGTH = 40;
const CHECKSUM_HEX_LENGTH = 8;
/** Total length of a well-formed key: 7 + 40 + 8 = 55 characters. */
export const API_KEY_LENGTH = API_KEY_PREFIX.length + SECRET_HEX_LENGTH + CHECKSUM_HEX_LENGTH;
/** `key_prefix` shown in lists: `exp_k1_` + 6 hex, enough to tell keys apart, far too little to guess from. */
export const KEY_PREFIX_LENGTH = 13;

const KEY_PATTERN = /^exp_k1_[0-9a-f]{48}$/;

function crc32Hex(text: string): string {
  return (Bun.hash.crc32(text) >>> 0).toString(16).padStart(CHECKSUM_HEX_LENGTH, '0');
}

/** Makes a new random API key. */
export function generateApiKey(): string {
  const secret = Buffer.from(crypto.getRandomValues(new Uint8Array(SECRET_HEX_LENGTH / 2))).toString('hex');
  return API_KEY_PREFIX + secret + crc32Hex(secret);
}

/** True when `candidate` has the exact shape of a key and its checksum matches. No I/O. */
export function isWellFormedApiKey(candidate: string): boolean {
  if (candidate.length !== API_KEY_LENGTH || !KEY_PATTERN.test(candidate)) return false;
  const secret = candidate.slice(API_KEY_PREFIX.length, API_KEY_PREFIX.length + SECRET_HEX_LENGTH);
  return crc32Hex(secret) === candidate.slice(API_KEY_PREFIX.length + SECRET_HEX_LENGTH);
}

/** SHA-256 of the key, hex: what the database stores and looks up. */
export function hashApiKey(key: string): string {
  return new Bun.CryptoHasher('sha256').update(key).digest('hex');
}

/** The public `key_prefix` of a key. */
export function apiKeyPrefix(key: string): string {
  return key.slice(0, KEY_PREFIX_LENGTH);
}
