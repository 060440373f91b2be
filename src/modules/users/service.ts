/** Accounts: create, read, change password. No Elysia here. */
import { and, eq, ne, sql } from 'drizzle-orm';
import { ChangeWatch, GenerationCache } from '../../db/change-watch.ts';
import type { Db } from '../../db/client.ts';
import { apiKeys, sessions, users } from '../../db/schema.ts';
import { type Clock, rfc3339, unixSeconds } from '../../lib/clock.ts';
import { lazy } from '../../lib/lazy.ts';
import { normaliseEmail, EMAIL_MAX_LENGTH } from '../../lib/email.ts';
import { passwordRuleViolation, type PasswordHasher } from '../../lib/password.ts';
import { AppError, MESSAGES, unauthorized, validationError, weakPassword } from '../../http/errors.ts';

/** The public view of an account: nothing else about a user ever leaves the server. */
export interface UserView {
  id: string;
  email: string;
  created_at: string;
}

export type UserRow = typeof users.$inferSelect;

export function toUserView(row: UserRow): UserView {
  return { id: row.id, email: row.email, created_at: rfc3339(row.createdAt) };
}

/** The stored form of an email from a request body, or a validation error. */
export function requireEmail(raw: string): string {
  const email = normaliseEmail(raw);
  if (!email) throw validationError(`email must be a valid address (local@domain.tld, at most ${EMAIL_MAX_LENGTH} characters)`);
  return email;
}

/** Account views remembered for GET /users/me; at the cap the cache starts again empty. */
const VIEW_CACHE_MAX = 10_000;

const invalidPassword = () => new AppError(400, 'invalid_password', MESSAGES.invalidPassword);

function isUniqueViolation(error: unknown): boolean {
  return error instanceof Error && /UNIQUE constraint failed: users\.email/.test(error.message);
}

/** Manages accounts. */
export class UserService {
  private readonly findById;
  private readonly findByEmail;
  // Holds views only (never a password hash); any write to the database empties it before the next read.
  private readonly views: GenerationCache<string, UserView>;

  constructor(
    private readonly db: Db,
    private readonly clock: Clock,
    private readonly hasher: PasswordHasher,
    private readonly passwordMinLength: number,
  ) {
    this.findById = lazy(() => db.select().from(users).where(eq(users.id, sql.placeholder('id'))).prepare());
    this.findByEmail = lazy(() => db.select().from(users).where(eq(users.email, sql.placeholder('email'))).prepare());
    this.views = new GenerationCache(ChangeWatch.of(db.$client), VIEW_CACHE_MAX);
  }

  /** The account `id`, if it exists. */
  get(id: string): UserRow | undefined {
    return this.findById().get({ id });
  }

  /** The public view of account `id`, if it exists: the hot path of GET /users/me, served from memory while nothing changed. */
  view(id: string): UserView | undefined {
    this.views.sync();
    let view = this.views.get(id);
    if (view === undefined) {
      const row = this.findById().get({ id });
      if (!row) return undefined;
      // Frozen: the same object answers every read until the data changes, and the direct read
      // serialises a frozen view once (src/http/direct-reads.ts).
      view = Object.freeze(toUserView(row));
      this.views.set(id, view);
    }
    return view;
  }

  /** The account with the normalised `email`, if it exists. */
  getByEmail(email: string): UserRow | undefined {
    return this.findByEmail().get({ email });
  }

  /**
   * Creates an account. The email's unique index decides races: of two registrations of one address
   * at once, the second insert fails and answers 409, never 500.
   */
  async create(rawEmail: string, password: string): Promise<UserRow> {
    const email = requireEmail(rawEmail);
    const violation = passwordRuleViolation(password, 'password', this.passwordMinLength);
    if (violation) throw weakPassword(violation);
    // Cheap early answer that spares an argon2 hash; the insert below still settles races.
    if (this.getByEmail(email)) throw new AppError(409, 'email_taken', MESSAGES.emailTaken);
    const passwordHash = await this.hasher.hash(password);
    const now = unixSeconds(this.clock.now());
    const row: UserRow = { id: crypto.randomUUID(), email, passwordHash, createdAt: now, updatedAt: now, disabledAt: null };
    try {
      this.db.insert(users).values(row).run();
    } catch (error) {
      if (isUniqueViolation(error)) throw new AppError(409, 'email_taken', MESSAGES.emailTaken);
      throw error;
    }
    return row;
  }

  /**
   * Checks the new password's rules (400 weak_password) before the current password
   * (400 invalid_password), as the contract orders them, then stores the new hash and ends every
   * other session of the user in one transaction: the session `keepSessionId` that made the change
   * stays valid, API keys are untouched.
   *
   * The store is a compare-and-swap on the hash that was verified: of concurrent changes, only the
   * first to commit applies; the others verified a password that is no longer current and answer
   * invalid_password, changing nothing (no lost update, no session ended by a change that lost).
   */
  async changePassword(userId: string, keepSessionId: string, currentPassword: string, newPassword: string): Promise<void> {
    const violation = passwordRuleViolation(newPassword, 'new_password', this.passwordMinLength, currentPassword);
    if (violation) throw weakPassword(violation);
    const user = this.get(userId);
    if (!user) throw unauthorized();
    if (!(await this.hasher.verify(currentPassword, user.passwordHash))) throw invalidPassword();
    const outcome = this.storePassword(userId, await this.hasher.hash(newPassword), { keepSessionId, expectedHash: user.passwordHash });
    if (outcome === 'stale') throw invalidPassword();
    // The session asking was ended meanwhile (a logout): as if it had been gone before the request.
    if (outcome === 'session_gone') throw unauthorized();
  }

  /** Sets a password without knowing the old one and ends all the user's sessions (operator CLI `user passwd`). */
  async setPassword(userId: string, newPassword: string): Promise<void> {
    const violation = passwordRuleViolation(newPassword, 'password', this.passwordMinLength);
    if (violation) throw weakPassword(violation);
    this.storePassword(userId, await this.hasher.hash(newPassword), {});
  }

  /**
   * Writes the new hash and ends the user's sessions (but `keepSessionId`), in one transaction.
   * With `expectedHash`, only if that is still the stored hash (else 'stale'), and with
   * `keepSessionId` only if that session still exists (else 'session_gone'); then nothing is written.
   */
  private storePassword(
    userId: string,
    passwordHash: string,
    guard: { keepSessionId?: string; expectedHash?: string },
  ): 'stored' | 'session_gone' | 'stale' {
    const now = unixSeconds(this.clock.now());
    const { keepSessionId, expectedHash } = guard;
    return this.db.transaction(
      (tx) => {
        if (expectedHash !== undefined) {
          const stored = tx.select({ hash: users.passwordHash }).from(users).where(eq(users.id, userId)).get();
          if (stored?.hash !== expectedHash) return 'stale';
        }
        if (keepSessionId !== undefined && !tx.select({ id: sessions.id }).from(sessions).where(eq(sessions.id, keepSessionId)).get()) {
          return 'session_gone';
        }
        tx.update(users).set({ passwordHash, updatedAt: now }).where(eq(users.id, userId)).run();
        const others = keepSessionId === undefined ? undefined : ne(sessions.id, keepSessionId);
        tx.delete(sessions).where(and(eq(sessions.userId, userId), others)).run();
        return 'stored';
      },
      // Take the write lock before the first read, so the check and the write see one state.
      { behavior: 'immediate' },
    );
  }

  /** Every account, oldest first (operator CLI `user list`). */
  list(): UserRow[] {
    return this.db.select().from(users).orderBy(users.createdAt).all();
  }

  /**
   * Deletes account `id` with its sessions and API keys in one transaction (operator CLI
   * `user delete`), and says how many of each went with it; undefined when there is no such account.
   * The explicit deletes make the counts exact; the schema's triggers and cascades would remove them too.
   */
  deleteAccount(id: string): { sessions: number; apiKeys: number } | undefined {
    return this.db.transaction(
      (tx) => {
        if (!tx.select({ id: users.id }).from(users).where(eq(users.id, id)).get()) return undefined;
        const ended = tx.delete(sessions).where(eq(sessions.userId, id)).returning({ id: sessions.id }).all().length;
        const revoked = tx.delete(apiKeys).where(eq(apiKeys.userId, id)).returning({ id: apiKeys.id }).all().length;
        tx.delete(users).where(eq(users.id, id)).run();
        return { sessions: ended, apiKeys: revoked };
      },
      { behavior: 'immediate' },
    );
  }

  /**
   * Disables or enables account `id` (operator CLI `user disable|enable`). Disabling ends every session
   * in the same transaction, so none outlives the moment it returns; the API keys stay, refused while
   * the account is disabled. Says whether the state changed and how many sessions ended; undefined
   * when there is no such account.
   */
  setDisabled(id: string, disabled: boolean): { changed: boolean; sessionsEnded: number } | undefined {
    const now = unixSeconds(this.clock.now());
    return this.db.transaction(
      (tx) => {
        const row = tx.select({ disabledAt: users.disabledAt }).from(users).where(eq(users.id, id)).get();
        if (!row) return undefined;
        const changed = (row.disabledAt !== null) !== disabled;
        if (changed) tx.update(users).set({ disabledAt: disabled ? now : null, updatedAt: now }).where(eq(users.id, id)).run();
        // Also when it was disabled already: a login that raced the first disable must not keep its session.
        const sessionsEnded = disabled ? tx.delete(sessions).where(eq(sessions.userId, id)).returning({ id: sessions.id }).all().length : 0;
        return { changed, sessionsEnded };
      },
      { behavior: 'immediate' },
    );
  }

  /** Ends every session of account `id` (operator CLI `user logout`) and says how many; API keys stay. */
  endSessions(id: string): number {
    return this.db.delete(sessions).where(eq(sessions.userId, id)).returning({ id: sessions.id }).all().length;
  }
}
