/** Applies the migrations embedded at build time; runs at every start, so upgrades migrate themselves. */
import type { MigrationMeta } from 'drizzle-orm/migrator';
import type { SQLiteSyncDialect } from 'drizzle-orm/sqlite-core';
import type { Db } from './client.ts';
import { embeddedMigrations } from './migrations.macro.ts' with { type: 'macro' };

const MIGRATIONS: MigrationMeta[] = embeddedMigrations();

/** Brings the schema up to date inside one transaction (drizzle's own bookkeeping table). */
export function migrate(db: Db): void {
  // drizzle-orm/bun-sqlite/migrator would read drizzle/ from disk; the same dialect call with embedded data does not.
  const internals = db as unknown as { dialect: SQLiteSyncDialect; session: Parameters<SQLiteSyncDialect['migrate']>[1] };
  internals.dialect.migrate(MIGRATIONS, internals.session, undefined);
}

/** Number of migrations compiled in; for `--version` and tests. */
export const MIGRATION_COUNT = MIGRATIONS.length;
