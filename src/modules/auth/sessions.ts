/**
 * Login sessions: one database row per issued JWT. A token is honoured only while its row exists, which
 * is what makes logout and password changes take effect on the very next request. Rows found are
 * remembered until the database changes (src/db/change-watch.ts), so a busy token costs no lookup.
 */
import { and, eq, isNull, lte, sql } from 'drizzle-orm';
import { ChangeWatch, GenerationCache } from '../../db/change-watch.ts';
import type { Db } from '../../db/client.ts';
import { sessions, users } from '../../db/schema.ts';
import type { Clock } from '../../lib/clock.ts';
import { unixSeconds } from '../../lib/clock.ts';
import { lazy } from '../../lib/lazy.ts';
import { JWT_TTL_SECONDS, type JwtCodec } from '../../lib/jwt.ts';

/** Live sessions remembered (session id -> user id); at the cap the cache starts again empty. */
const LIVE_SESSIONS_CACHE_MAX = 10_000;

/** Who a valid session token speaks for. */
export interface SessionIdentity {
  userId: string;
  sessionId: string;
}

/** Issues, checks and revokes session tokens. */
export class SessionService {
  private readonly findSession;
  private readonly insertIfCurrent;
  // Any write to the database (a logout, a password change, the CLI) empties it before the next lookup.
  private readonly liveSessions: GenerationCache<string, string>;

  constructor(
    private readonly db: Db,
    private readonly jwt: JwtCodec,
    private readonly clock: Clock,
  ) {
    // Hot path: every JWT-authenticated request runs this one indexed lookup. The join holds whatever
    // happened to the owner: a session of a deleted or disabled account finds nothing.
    this.findSession = lazy(() =>
      db
        .select({ userId: sessions.userId })
        .from(sessions)
        .innerJoin(users, eq(users.id, sessions.userId))
        .where(and(eq(sessions.id, sql.placeholder('id')), isNull(users.disabledAt)))
        .prepare(),
    );
    this.insertIfCurrent = lazy(() =>
      db.$client.prepare<never, { id: string; userId: string; passwordHash: string; now: number; expiresAt: number }>(
        `INSERT INTO sessions (id, user_id, created_at, expires_at)
         SELECT $id, id, $now, $expiresAt FROM users
         WHERE id = $userId AND password_hash = $passwordHash AND disabled_at IS NULL`,
      ),
    );
    this.liveSessions = new GenerationCache(ChangeWatch.of(db.$client), LIVE_SESSIONS_CACHE_MAX);
  }

  /**
   * Opens a session for `userId` and returns its token, only if the account still exists, is enabled
   * and still has `passwordHash`: the check and the insert are one statement, so a password change
   * that commits while a login is verifying the old password leaves that login without a session.
   * Returns null otherwise. Also clears long-expired sessions.
   */
  async issue(userId: string, passwordHash: string): Promise<string | null> {
    const now = unixSeconds(this.clock.now());
    const sessionId = crypto.randomUUID();
    this.db.delete(sessions).where(lte(sessions.expiresAt, now)).run();
    const opened = this.insertIfCurrent().run({ id: sessionId, userId, passwordHash, now, expiresAt: now + JWT_TTL_SECONDS });
    if (opened.changes !== 1) return null;
    return this.jwt.sign(userId, sessionId, now);
  }

  /** The identity behind a token whose signature, expiry and session are all valid; else null. */
  authenticate(token: string): SessionIdentity | null {
    const claims = this.jwt.verify(token, unixSeconds(this.clock.now()));
    if (!claims) return null;
    this.liveSessions.sync();
    let userId = this.liveSessions.get(claims.jti);
    if (userId === undefined) {
      const row = this.findSession().get({ id: claims.jti });
      if (!row) return null;
      userId = row.userId;
      this.liveSessions.set(claims.jti, userId);
    }
    if (userId !== claims.sub) return null;
    return { userId, sessionId: claims.jti };
  }

  /** Ends one session (logout). */
  revoke(sessionId: string): void {
    this.db.delete(sessions).where(eq(sessions.id, sessionId)).run();
  }
}
