/**
 * One-time data migration: stored emails into Unicode NFC, the form every lookup now uses
 * (src/lib/email.ts). SQL cannot normalise Unicode, so this runs in code, once per database.
 */
import { eq, sql } from 'drizzle-orm';
import type { Db } from './client.ts';
import { settings, users } from './schema.ts';

const DONE_KEY = 'emails_nfc';

/** What the pass found: rows rewritten, and rows left as they were because their NFC form is taken. */
export interface EmailNormalisation {
  rewritten: number;
  conflicts: string[];
}

/**
 * Rewrites every stored email that is not in NFC, unless another account already holds its NFC
 * form: then both accounts stay as they are (nothing is merged or lost) and the email is returned, so
 * `serve` can name it and an operator can decide which one to delete. Runs once; later starts read one settings row.
 */
export function normaliseStoredEmails(db: Db): EmailNormalisation {
  const result: EmailNormalisation = { rewritten: 0, conflicts: [] };
  // Plain SQL for the check every start makes: building it with drizzle cost a millisecond of start-up.
  if (db.$client.query('SELECT 1 FROM settings WHERE key = ?').get(DONE_KEY) !== null) return result;
  db.transaction((tx) => {
    // Pure ASCII is always NFC; only the rest needs a look.
    const candidates = tx.select({ id: users.id, email: users.email }).from(users).where(sql`${users.email} GLOB '*[^ -~]*'`).all();
    for (const { id, email } of candidates) {
      const nfc = email.normalize('NFC');
      if (nfc === email) continue;
      if (tx.select({ id: users.id }).from(users).where(eq(users.email, nfc)).get()) {
        result.conflicts.push(email);
        continue;
      }
      tx.update(users).set({ email: nfc }).where(eq(users.id, id)).run();
      result.rewritten++;
    }
    tx.insert(settings).values({ key: DONE_KEY, value: '1' }).onConflictDoNothing().run();
  });
  return result;
}
