/**
 * Who a credential speaks for: a session token (JWT) or an API key, checked against the database.
 * Shared by the API's guard (the Authorization header) and the tunnel's control channel (the `Auth`
 * message), so both accept and refuse exactly the same credentials.
 */
import type { Principal } from '../../http/auth.ts';
import { API_KEY_PREFIX } from '../../lib/api-key.ts';
import type { ApiKeyService } from '../api-keys/service.ts';
import type { SessionService } from './sessions.ts';

/** Longest credential worth looking at; a JWT of ours is ~250 characters, an API key 55. */
export const MAX_CREDENTIAL_LENGTH = 4096;

/** Resolves credentials to principals; null for anything not valid right now. */
export class Authenticator {
  constructor(
    private readonly sessions: SessionService,
    private readonly apiKeys: ApiKeyService,
  ) {}

  /** The principal behind an `Authorization: Bearer <credential>` header value. */
  fromHeader(header: string | null): Principal | null {
    if (header === null || header.length > MAX_CREDENTIAL_LENGTH) return null;
    const space = header.indexOf(' ');
    if (space < 0 || header.slice(0, space).toLowerCase() !== 'bearer') return null;
    return this.authenticate(header.slice(space + 1).trim());
  }

  /** The principal behind a bare credential: an `exp_k1_` key, or else a session token. */
  authenticate(credential: string): Principal | null {
    if (credential.length === 0 || credential.length > MAX_CREDENTIAL_LENGTH) return null;
    if (credential.startsWith(API_KEY_PREFIX)) {
      const key = this.apiKeys.authenticate(credential);
      return key && { kind: 'api_key', userId: key.userId, keyId: key.keyId };
    }
    const session = this.sessions.authenticate(credential);
    return session && { kind: 'jwt', userId: session.userId, sessionId: session.sessionId };
  }
}
