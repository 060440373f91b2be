/**
 * HTTP-01 challenge answers (RFC 8555 §8.3): tokens the ACME order put up, kept in memory for the
 * few seconds of a validation, and read by the plain-HTTP listener at `/.well-known/acme-challenge/`.
 */

/** The path prefix the CA fetches; the token follows it. */
export const ACME_CHALLENGE_PATH = '/.well-known/acme-challenge/';

/** A token is base64url (RFC 8555 §8.1: at least 128 bits of entropy); anything else is never one of ours. */
const TOKEN = /^[A-Za-z0-9_-]{1,256}$/;

/** The key authorizations of the HTTP-01 challenges in progress, by token. */
export class Http01Challenges {
  private readonly answers = new Map<string, string>();

  /** Serves `keyAuthorization` for `token` until `remove(token)`. */
  present(token: string, keyAuthorization: string): void {
    this.answers.set(token, keyAuthorization);
  }

  remove(token: string): void {
    this.answers.delete(token);
  }

  /** The body to answer `GET /.well-known/acme-challenge/{token}` with, or undefined (then 404). */
  challengeResponse(token: string): string | undefined {
    return TOKEN.test(token) ? this.answers.get(token) : undefined;
  }

  /** Challenges in progress; for tests. */
  get size(): number {
    return this.answers.size;
  }

  /**
   * The listener's answer for `url` (a request's absolute URL): the key authorization as text/plain,
   * 404 for an unknown token, or undefined when the path is not under ACME_CHALLENGE_PATH at all (then
   * the listener does what it does with other requests: redirect to HTTPS).
   */
  respond(url: string): Response | undefined {
    const { pathname } = new URL(url);
    if (!pathname.startsWith(ACME_CHALLENGE_PATH)) return undefined;
    const answer = this.challengeResponse(pathname.slice(ACME_CHALLENGE_PATH.length));
    if (answer === undefined) return new Response('Not Found\n', { status: 404, headers: { 'content-type': 'text/plain; charset=utf-8' } });
    return new Response(answer, { headers: { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' } });
  }
}
