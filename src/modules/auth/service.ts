/** Register, log in, log out. No Elysia here. */
import type { Clock } from '../../lib/clock.ts';
import type { PasswordHasher } from '../../lib/password.ts';
import { AppError, MESSAGES } from '../../http/errors.ts';
import { rateLimited } from '../../http/rate-limit.ts';
import { toUserView, type UserService, type UserView, requireEmail } from '../users/service.ts';
import type { SessionService } from './sessions.ts';

/** Per-account failed-login back-off (src/lib/login-backoff.ts), or a no-op when auth limits are off. */
export interface LoginThrottle {
  check(account: string, nowMs: number): { allowed: boolean; retryAfterSeconds: number };
  recordFailure(account: string, nowMs: number): void;
  recordSuccess(account: string): void;
}

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
    return { user: toUserView(user), token: await this.sessions.issue(user.id) };
  }

  /**
   * Logs in. An unknown email and a wrong password get the same answer after the same argon2 work.
   * Failures count against the target account whatever the source address; from the 5th in a row the
   * account answers 429 for an exponentially growing delay, and a success resets the count.
   */
  async login(rawEmail: string, password: string): Promise<AuthResult> {
    const email = requireEmail(rawEmail);
    const gate = this.throttle.check(email, this.clock.now());
    if (!gate.allowed) throw rateLimited(gate.retryAfterSeconds);
    const user = this.users.getByEmail(email);
    const ok = user ? await this.hasher.verify(password, user.passwordHash) : await this.hasher.verifyDummy(password);
    if (!user || !ok) {
      this.throttle.recordFailure(email, this.clock.now());
      throw new AppError(401, 'invalid_credentials', MESSAGES.invalidCredentials, { 'WWW-Authenticate': 'Bearer' });
    }
    this.throttle.recordSuccess(email);
    return { user: toUserView(user), token: await this.sessions.issue(user.id) };
  }

  /** Ends the session that made the request. */
  logout(sessionId: string): void {
    this.sessions.revoke(sessionId);
  }
}
