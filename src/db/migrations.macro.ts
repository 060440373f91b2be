/**
 * Bun macro: reads drizzle/ at build time and inlines the migrations into the bundle, so the compiled
 * binary (which cannot read drizzle/ from disk) carries them. `bun run` executes it at load time too.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** One migration as drizzle's migrator wants it. */
export interface EmbeddedMigration {
  tag: string;
  sql: string[];
  bps: boolean;
  folderMillis: number;
  hash: string;
}

interface Journal {
  entries: Array<{ tag: string; when: number; breakpoints: boolean }>;
}

/** Every migration listed in drizzle/meta/_journal.json, with its SQL split at statement breakpoints. */
export function embeddedMigrations(): EmbeddedMigration[] {
  const folder = join(import.meta.dir, '..', '..', 'drizzle');
  const journal = JSON.parse(readFileSync(join(folder, 'meta', '_journal.json'), 'utf8')) as Journal;
  return journal.entries.map((entry) => {
    const query = readFileSync(join(folder, `${entry.tag}.sql`), 'utf8');
    return {
      tag: entry.tag,
      sql: query.split('--> statement-breakpoint'),
      bps: entry.breakpoints,
      folderMillis: entry.when,
      // Same hash drizzle's own readMigrationFiles() records, so either migrator recognises the other's work.
      hash: new Bun.CryptoHasher('sha256').update(query).digest('hex'),
    };
  });
}
