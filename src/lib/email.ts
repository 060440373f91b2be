/** Email normalisation: trimmed, lower-cased, Unicode NFC, at most 254 characters, a plausible local@domain.tld. */

export const EMAIL_MAX_LENGTH = 254;

// One "@", no whitespace or control characters, a dot in the domain with something either side of it.
// Deliberately loose: the only true test of an address is mail, which this server does not send.
const PLAUSIBLE_EMAIL = /^[^\s@\p{Cc}]{1,64}@[^\s@\p{Cc}.]+(\.[^\s@\p{Cc}.]+)+$/u;

/**
 * The stored form of `raw`, or undefined when it is not a plausible address. NFC because the same
 * address typed on two keyboards may arrive composed (`ä`, U+00E4) or decomposed (`a` + U+0308):
 * without it, one person could hold two accounts, or fail to log in to their own.
 */
export function normaliseEmail(raw: string): string | undefined {
  const email = raw.trim().toLowerCase().normalize('NFC');
  if (email.length > EMAIL_MAX_LENGTH || !PLAUSIBLE_EMAIL.test(email)) return undefined;
  return email;
}
