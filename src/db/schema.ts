/** Database tables (drizzle). Times are integer Unix seconds; ids are UUID strings. */
import { sqliteTable, text, integer, index } from 'drizzle-orm/sqlite-core';

/**
 * Accounts. `email` is stored trimmed, lower-cased and in Unicode NFC, so the unique index is
 * case- and form-insensitive in effect. `disabledAt` is set by an operator (`user disable`): while it
 * is, the account cannot log in and none of its keys or sessions authenticate.
 *
 * Deleting a row also deletes its sessions and API keys through triggers (drizzle/0001), not only
 * through the foreign keys' cascades: a `sqlite3` shell has foreign keys off by default, and a
 * credential must never outlive its user, whatever removed the row.
 */
export const users = sqliteTable('users', {
  id: text('id').primaryKey(),
  email: text('email').notNull().unique(),
  passwordHash: text('password_hash').notNull(),
  createdAt: integer('created_at').notNull(),
  updatedAt: integer('updated_at').notNull(),
  disabledAt: integer('disabled_at'),
});

/**
 * Login sessions, one per issued JWT (`id` = the token's `jti`). A JWT is honoured only while its row
 * exists: logout deletes one row, a password change deletes the user's other rows.
 */
export const sessions = sqliteTable(
  'sessions',
  {
    id: text('id').primaryKey(),
    userId: text('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    createdAt: integer('created_at').notNull(),
    expiresAt: integer('expires_at').notNull(),
  },
  (t) => [index('sessions_user_id_idx').on(t.userId), index('sessions_expires_at_idx').on(t.expiresAt)],
);

/** API keys. Only the SHA-256 of the key is stored; a deleted key's row is removed. */
export const apiKeys = sqliteTable(
  'api_keys',
  {
    id: text('id').primaryKey(),
    userId: text('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    name: text('name').notNull(),
    keyPrefix: text('key_prefix').notNull(),
    keyHash: text('key_hash').notNull().unique(),
    createdAt: integer('created_at').notNull(),
    lastUsedAt: integer('last_used_at'),
  },
  (t) => [index('api_keys_user_id_created_at_idx').on(t.userId, t.createdAt)],
);

/** Server-wide settings the server generates for itself (the JWT secret when none is configured). */
export const settings = sqliteTable('settings', {
  key: text('key').primaryKey(),
  value: text('value').notNull(),
});

/**
 * TLS certificates the server obtained over ACME (src/tls), one row per certificate, keyed by its
 * managed name (`api.example.com`, `*.expose.example.com`, or an on-demand tunnel host). The private
 * key sits beside its certificate: this file is already the server's secret store (0600, like the JWT
 * secret), and keeping both in one row makes a swap atomic. `directory_url` is the ACME directory that
 * issued it, so switching CAs (staging to production) orders anew instead of serving the old CA's.
 */
export const tlsCertificates = sqliteTable('tls_certificates', {
  name: text('name').primaryKey(),
  directoryUrl: text('directory_url').notNull(),
  certPem: text('cert_pem').notNull(),
  keyPem: text('key_pem').notNull(),
  notBefore: integer('not_before').notNull(),
  notAfter: integer('not_after').notNull(),
  issuer: text('issuer').notNull(),
  /** 1 for a tunnel host's certificate obtained on demand (bounded, evicted); 0 for a configured name. */
  onDemand: integer('on_demand', { mode: 'boolean' }).notNull().default(false),
  updatedAt: integer('updated_at').notNull(),
});
