/** Server-generated settings kept in the database. */
import type { Db } from './client.ts';
import { settings } from './schema.ts';

const JWT_SECRET_KEY = 'jwt_secret';
const GENERATED_SECRET_BYTES = 32;

/**
 * The JWT secret: the configured one, else the one generated on first start and kept in the database
 * (so restarts keep sessions valid). Read first: every later start then takes no write lock. On a
 * fresh database, insert-or-ignore then read back, so two processes racing there agree on one secret.
 */
export function resolveJwtSecret(db: Db, configured: string | undefined): string {
  if (configured !== undefined) return configured;
  // Plain SQL for the read every start makes: building it with drizzle cost a millisecond of start-up.
  const stored = () => db.$client.query<{ value: string }, [string]>('SELECT value FROM settings WHERE key = ?').get(JWT_SECRET_KEY)?.value;
  const existing = stored();
  if (existing !== undefined) return existing;
  const generated = Buffer.from(crypto.getRandomValues(new Uint8Array(GENERATED_SECRET_BYTES))).toString('base64url');
  db.insert(settings).values({ key: JWT_SECRET_KEY, value: generated }).onConflictDoNothing().run();
  return stored()!;
}
