/** Keeps credentials out of logs: anything in a URL path that looks like an API key or a JWT. */

/**
 * What looks like one of our credentials, wherever someone pasted it into a path: an API key (its
 * prefix and any hex after it, so a truncated or mistyped key goes too) or a JWT (three base64url
 * segments, the first starting `eyJ`, the encoding of `{"`). Percent-encoded prefixes included.
 */
const API_KEY_IN_PATH = /exp(?:_|%5f)k1(?:_|%5f)[0-9a-f]*/gi;
const JWT_IN_PATH = /eyJ[A-Za-z0-9_-]*(?:\.|%2[eE])[A-Za-z0-9_-]+(?:(?:\.|%2[eE])[A-Za-z0-9_-]*)?/g;
const REDACTED = '[redacted]';

/** `path` with anything that looks like an API key or a JWT replaced, so the access log never holds one. */
export function redactCredentials(path: string): string {
  // The common path holds neither; skip the regex replace (and its new string) then.
  if (!/exp|eyJ/i.test(path)) return path;
  return path.replace(API_KEY_IN_PATH, REDACTED).replace(JWT_IN_PATH, REDACTED);
}
