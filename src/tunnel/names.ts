/** Readable generated subdomains: `brave-otter-3f9a` (an adjective, an animal, 16 random bits). */

const ADJECTIVES = [
  'brave', 'calm', 'clever', 'eager', 'gentle', 'happy', 'jolly', 'keen', 'kind', 'lively', 'lucky', 'merry',
  'nimble', 'proud', 'quick', 'quiet', 'sunny', 'swift', 'tidy', 'witty', 'bold', 'bright', 'cosy', 'fair',
];
const ANIMALS = [
  'otter', 'badger', 'beaver', 'falcon', 'ferret', 'heron', 'koala', 'lemur', 'lynx', 'marten', 'panda', 'puffin',
  'rabbit', 'raven', 'seal', 'sparrow', 'stoat', 'tiger', 'walrus', 'wombat', 'yak', 'zebra', 'gecko', 'owl',
];

const pick = <T>(list: readonly T[]): T => list[crypto.getRandomValues(new Uint32Array(1))[0]! % list.length]!;

/** A fresh name; it may be taken, so the caller checks and draws again. Always a valid subdomain. */
export function generateSubdomain(): string {
  const suffix = Buffer.from(crypto.getRandomValues(new Uint8Array(2))).toString('hex');
  return `${pick(ADJECTIVES)}-${pick(ANIMALS)}-${suffix}`;
}
