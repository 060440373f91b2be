/** API keys: create, list, delete, and authenticate a presented key. No Elysia here. */
import { and, count, desc, eq, inArray, isNull, sql } from 'drizzle-orm';
import { ChangeWatch, GenerationCache } from '../../db/change-watch.ts';
import type { Db } from '../../db/client.ts';
import { apiKeys, users } from '../../db/schema.ts';
import { type Clock, rfc3339, unixSeconds } from '../../lib/clock.ts';
import { lazy } from '../../lib/lazy.ts';
import { apiKeyPrefix, generateApiKey, hashApiKey, isWellFormedApiKey } from '../../lib/api-key.ts';
import { AppError, MESSAGES, notFound, validationError } from '../../http/errors.ts';

/** `last_used_at` is written at most once per key per this many seconds (the first use always). */
export const LAST_USED_WRITE_INTERVAL_SECONDS = 60;
export const API_KEY_NAME_MAX_LENGTH = 100;
/** Keys remembered after a successful lookup; at the cap the cache starts again empty. */
const KNOWN_KEYS_CACHE_MAX = 10_000;

const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The public view of a key: nothing else about a key ever leaves the server. */
export interface ApiKeyView {
  id: string;
  name: string;
  key_prefix: string;
  created_at: string;
  last_used_at: string | null;
}

/** Who a valid API key speaks for. */
export interface ApiKeyIdentity {
  userId: string;
  keyId: string;
}

/** A key found in the database, with the last_used_at it has there. */
interface KnownKey extends ApiKeyIdentity {
  lastUsedAt: number | null;
}

type KeyRow = typeof apiKeys.$inferSelect;

function toView(row: KeyRow): ApiKeyView {
  return {
    id: row.id,
    name: row.name,
    key_prefix: row.keyPrefix,
    created_at: rfc3339(row.createdAt),
    last_used_at: row.lastUsedAt === null ? null : rfc3339(row.lastUsedAt),
  };
}

/** Trimmed key name, or a validation error naming the rule. */
export function normaliseKeyName(name: string): string {
  const trimmed = name.trim();
  const length = [...trimmed].length;
  if (length < 1 || length > API_KEY_NAME_MAX_LENGTH) {
    throw validationError(`name must be 1 to ${API_KEY_NAME_MAX_LENGTH} characters after trimming`);
  }
  return trimmed;
}

/** Manages one server's API keys. */
export class ApiKeyService {
  private readonly findByHash;
  private readonly touch;
  private readonly watch: ChangeWatch;
  // Keyed by the presented key itself, which this process sees on every request anyway: a hit skips
  // the checksum, the SHA-256 and the lookup. Any write to the database (a delete, the CLI) empties it.
  private readonly knownKeys: GenerationCache<string, KnownKey>;

  constructor(
    private readonly db: Db,
    private readonly clock: Clock,
    private readonly maxKeysPerUser: number,
  ) {
    // Hot path: every key-authenticated request runs this lookup by the unique hash index. The join
    // holds whatever happened to the owner: a key of a deleted or disabled account finds nothing.
    this.findByHash = lazy(() =>
      db
        .select({ id: apiKeys.id, userId: apiKeys.userId, lastUsedAt: apiKeys.lastUsedAt })
        .from(apiKeys)
        .innerJoin(users, eq(users.id, apiKeys.userId))
        .where(and(eq(apiKeys.keyHash, sql.placeholder('hash')), isNull(users.disabledAt)))
        .prepare(),
    );
    this.touch = lazy(() =>
      db
        .update(apiKeys)
        .set({ lastUsedAt: sql`${sql.placeholder('now')}` })
        .where(eq(apiKeys.id, sql.placeholder('id')))
        .prepare(),
    );
    this.watch = ChangeWatch.of(db.$client);
    this.knownKeys = new GenerationCache(this.watch, KNOWN_KEYS_CACHE_MAX);
  }

  /** The caller's keys, newest first. */
  list(userId: string): ApiKeyView[] {
    return this.db
      .select()
      .from(apiKeys)
      .where(eq(apiKeys.userId, userId))
      .orderBy(desc(apiKeys.createdAt), desc(apiKeys.id))
      .all()
      .map(toView);
  }

  /**
   * Creates a key named `name` and returns its view and the full key (shown this once only).
   * The count and the insert share one transaction, so parallel requests cannot pass the limit.
   */
  create(userId: string, name: string): { apiKey: ApiKeyView; key: string } {
    const cleanName = normaliseKeyName(name);
    const key = generateApiKey();
    const row: KeyRow = {
      // UUIDv7 sorts by creation time, which keeps "newest first" stable within one second.
      id: Bun.randomUUIDv7(),
      userId,
      name: cleanName,
      keyPrefix: apiKeyPrefix(key),
      keyHash: hashApiKey(key),
      createdAt: unixSeconds(this.clock.now()),
      lastUsedAt: null,
    };
    this.db.transaction(
      (tx) => {
        const live = tx.select({ n: count() }).from(apiKeys).where(eq(apiKeys.userId, userId)).get()!.n;
        if (live >= this.maxKeysPerUser) throw new AppError(409, 'too_many_api_keys', MESSAGES.tooManyApiKeys);
        tx.insert(apiKeys).values(row).run();
      },
      { behavior: 'immediate' },
    );
    return { apiKey: toView(row), key };
  }

  /** Deletes the caller's key `id`; a key that is not the caller's, unknown or malformed is "not found". */
  delete(userId: string, id: string): void {
    if (!UUID_PATTERN.test(id)) throw notFound(MESSAGES.apiKeyNotFound);
    const deleted = this.db
      .delete(apiKeys)
      .where(and(eq(apiKeys.id, id.toLowerCase()), eq(apiKeys.userId, userId)))
      .returning({ id: apiKeys.id })
      .all();
    if (deleted.length === 0) throw notFound(MESSAGES.apiKeyNotFound);
  }

  /**
   * The identity behind a presented key, or null. The checksum is checked first, so garbage never
   * reaches the database. Records the use (coalesced to one write per key per minute).
   */
  authenticate(presented: string): ApiKeyIdentity | null {
    const generation = this.knownKeys.sync();
    let key = this.knownKeys.get(presented);
    if (key === undefined) {
      if (!isWellFormedApiKey(presented)) return null;
      const row = this.findByHash().get({ hash: hashApiKey(presented) });
      if (!row) return null;
      key = { userId: row.userId, keyId: row.id, lastUsedAt: row.lastUsedAt };
      this.knownKeys.set(presented, key);
    }
    const now = unixSeconds(this.clock.now());
    if (key.lastUsedAt === null || now - key.lastUsedAt >= LAST_USED_WRITE_INTERVAL_SECONDS) {
      const { keyId } = key;
      // Our own write, already mirrored in the cache: it need not empty the caches of this connection.
      this.watch.ownWrite(generation, () => this.touch().run({ id: keyId, now }));
      key.lastUsedAt = now;
    }
    return { userId: key.userId, keyId: key.keyId };
  }

  /**
   * Of the key ids `ids`, those that still authenticate: the key exists and its user exists and is
   * not disabled. Live tunnels are checked with it (one query however many there are).
   */
  liveKeyIds(ids: string[]): Set<string> {
    const live = new Set<string>();
    // SQLite binds at most 32,766 parameters per statement.
    for (let i = 0; i < ids.length; i += 10_000) {
      const rows = this.db
        .select({ id: apiKeys.id })
        .from(apiKeys)
        .innerJoin(users, eq(users.id, apiKeys.userId))
        .where(and(inArray(apiKeys.id, ids.slice(i, i + 10_000)), isNull(users.disabledAt)))
        .all();
      for (const row of rows) live.add(row.id);
    }
    return live;
  }

  /**
   * Deletes key `id` whoever owns it (operator CLI `key revoke`); refused from the next request on.
   * Returns what the key was, or undefined when there is no such key.
   */
  revokeById(id: string): { userId: string; name: string; keyPrefix: string } | undefined {
    if (!UUID_PATTERN.test(id)) return undefined;
    return this.db
      .delete(apiKeys)
      .where(eq(apiKeys.id, id.toLowerCase()))
      .returning({ userId: apiKeys.userId, name: apiKeys.name, keyPrefix: apiKeys.keyPrefix })
      .get();
  }

  /** The id of the full key `presented` (one found leaked, say), whoever owns it, if it exists. */
  idOfKey(presented: string): string | undefined {
    if (!isWellFormedApiKey(presented)) return undefined;
    return this.db.select({ id: apiKeys.id }).from(apiKeys).where(eq(apiKeys.keyHash, hashApiKey(presented))).get()?.id;
  }
}
