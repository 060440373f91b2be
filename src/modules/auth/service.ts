/** Register, log in, log out. No Elysia here. */
import type { Clock } from '../../lib/clock.ts';
import type { PasswordHasher } from '../../lib/password.ts';
import { AppError, forbidden, MESSAGES } from '../../http/errors.ts';
import { rateLimited } from '../../http/rate-limit.ts';
import { toUserView, type UserService, type UserView, requireEmail } from '../users/service.ts';
import type { SessionService } from './sessions.ts';

/** Per-account failed-login back-off (src/lib/login-backoff.ts), or a no-op when auth limits are off. */
export interface LoginThrottle {
  /** Admits an attempt and counts it as failed until `recordSuccess` says otherwise. */
  reserve(account: string, nowMs: number): { allowed: boolean; retryAfterSeconds: number };
  recordSuccess(account: string): void;
}

const invalidCredentials = () => new AppError(401, 'invalid_credentials', MESSAGES.invalidCredentials, { 'WWW-Authenticate': 'Bearer' });

/** A user and a fresh session token: the answer to register and login. */
export interface AuthResult {
  user: UserView;
  token: string;
}

/** Account entry points. */
export class AuthService {
  constructor(
    private readonly users: UserService,
    private readonly sessions: SessionService,
    private readonly hasher: PasswordHasher,
    private readonly throttle: LoginThrottle,
    private readonly clock: Clock,
    private readonly registration: 'open' | 'closed',
  ) {}

  /** Creates an account and logs it in. */
  async register(email: string, password: string): Promise<AuthResult> {
    if (this.registration === 'closed') throw new AppError(403, 'registration_closed', MESSAGES.registrationClosed);
    const user = await this.users.create(email, password);
    const token = await this.sessions.issue(user.id, user.passwordHash);
    // Only an operator deleting or disabling the account in this instant gets here.
    if (token === null) throw invalidCredentials();
    return { user: toUserView(user), token };
  }

  /**
   * Logs in. An unknown email and a wrong password get the same answer after the same argon2 work.
   * Failures count against the target account whatever the source address; from the 5th in a row the
   * account answers 429 for an exponentially growing delay, and a success resets the count. Attempts
   * count when they start, so a burst in flight cannot outrun the count (LoginThrottle.reserve).
   *
   * The session is opened only if the password just verified is still the account's: a login that
   * read the old hash while a password change committed must not come out holding a session.
   */
  async login(rawEmail: string, password: string): Promise<AuthResult> {
    const email = requireEmail(rawEmail);
    const gate = this.throttle.reserve(email, this.clock.now());
    if (!gate.allowed) throw rateLimited(gate.retryAfterSeconds);
    const user = this.users.getByEmail(email);
    const ok = user ? await this.hasher.verify(password, user.passwordHash) : await this.hasher.verifyDummy(password);
    if (!user || !ok) throw invalidCredentials();
    this.throttle.recordSuccess(email);
    // Only the right password learns that the account is disabled: a wrong one gets the usual 401.
    if (user.disabledAt !== null) throw forbidden();
    const token = await this.sessions.issue(user.id, user.passwordHash);
    if (token === null) throw invalidCredentials();
    return { user: toUserView(user), token };
  }

  /** Ends the session that made the request. */
  logout(sessionId: string): void {
    this.sessions.revoke(sessionId);
  }
}
