/** Applies the migrations embedded at build time; runs at every start, so upgrades migrate themselves. */
import type { MigrationMeta } from 'drizzle-orm/migrator';
import type { SQLiteSyncDialect } from 'drizzle-orm/sqlite-core';
import type { Db } from './client.ts';
import { embeddedMigrations } from './migrations.macro.ts' with { type: 'macro' };
import { type EmailNormalisation, normaliseStoredEmails } from './normalise-emails.ts';

const MIGRATIONS: MigrationMeta[] = embeddedMigrations();

/** The newest migration compiled in, as drizzle records it (`created_at` = the journal's `when`). */
const NEWEST_KNOWN_MILLIS = Math.max(0, ...MIGRATIONS.map((migration) => migration.folderMillis));

/** The database was migrated by a newer release than this one: its schema is unknown here. */
export class SchemaTooNewError extends Error {
  override name = 'SchemaTooNewError';
  constructor(
    /** Migrations the database records as applied. */
    readonly databaseSchema: number,
    /** Migrations this build carries. */
    readonly knownSchema: number,
  ) {
    super(`the database has schema ${databaseSchema}, this build knows schema ${knownSchema} only`);
  }
}

/**
 * Refuses a database that records a migration this build does not carry. drizzle's migrator applies
 * only what is newer than the database's newest record, so an older binary would otherwise run on a
 * schema it does not know without a word (and write rows a newer column's rules never saw).
 * Returns whether the database records exactly the migrations of this build, the newest included:
 * then drizzle's migrator would have nothing to do.
 * @throws SchemaTooNewError
 */
function refuseNewerSchema(db: Db): boolean {
  const sqlite = db.$client;
  const table = sqlite.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '__drizzle_migrations'").get();
  if (table === null) return false;
  const applied = sqlite.query<{ n: number; newest: number | null }, []>('SELECT count(*) AS n, max(created_at) AS newest FROM __drizzle_migrations').get()!;
  const newest = Number(applied.newest ?? 0);
  if (applied.n > MIGRATIONS.length || newest > NEWEST_KNOWN_MILLIS) {
    throw new SchemaTooNewError(applied.n, MIGRATIONS.length);
  }
  return applied.n === MIGRATIONS.length && newest === NEWEST_KNOWN_MILLIS;
}

/**
 * Brings the schema up to date inside one transaction (drizzle's own bookkeeping table), then the
 * data (emails into NFC, once). Returns what the email pass could not rewrite, for the caller to say.
 * @throws SchemaTooNewError when the database is newer than this build, before changing anything.
 */
export function migrate(db: Db): EmailNormalisation {
  // Every start but an upgrade's finds the schema current: it then skips the migrator, whose
  // bookkeeping queries were a visible part of the time from start to the first answer.
  if (!refuseNewerSchema(db)) {
    // drizzle-orm/bun-sqlite/migrator would read drizzle/ from disk; the same dialect call with embedded data does not.
    const internals = db as unknown as { dialect: SQLiteSyncDialect; session: Parameters<SQLiteSyncDialect['migrate']>[1] };
    internals.dialect.migrate(MIGRATIONS, internals.session, undefined);
  }
  return normaliseStoredEmails(db);
}

/** Number of migrations compiled in; for `--version` and tests. */
export const MIGRATION_COUNT = MIGRATIONS.length;
