/**
 * Where the ACME account key and the certificates with their private keys live: the server's SQLite
 * database (the `settings` row `acme_account_key`, the `tls_certificates` table, drizzle/0002), which
 * is already its secret store (created 0600, see src/cli/store.ts), so a restart serves what was
 * obtained before without a new order, and a backup carries it.
 */
import { and, asc, eq } from 'drizzle-orm';
import { crypto as acmeCrypto } from 'acme-client';
import type { Db } from '../db/client.ts';
import { settings, tlsCertificates } from '../db/schema.ts';
import { unixSeconds } from '../lib/clock.ts';
import { readCertificate, type CertificateMaterial } from './certificate.ts';

const ACCOUNT_KEY_SETTING = 'acme_account_key';

/** A stored certificate and where it came from. */
export interface StoredCertificate {
  name: string;
  directoryUrl: string;
  material: CertificateMaterial;
  onDemand: boolean;
}

/** The ACME account key and the certificates, in the database. */
export class CertificateStore {
  constructor(private readonly db: Db) {}

  /**
   * The account key (PEM, ECDSA P-256): the stored one, else a new one kept for every later start.
   * Insert-or-ignore then read back, so two processes starting on a fresh database agree on one key.
   */
  async accountKey(): Promise<string> {
    const stored = () => this.db.select().from(settings).where(eq(settings.key, ACCOUNT_KEY_SETTING)).get()?.value;
    const existing = stored();
    if (existing !== undefined) return existing;
    const generated = (await acmeCrypto.createPrivateEcdsaKey('P-256')).toString();
    this.db.insert(settings).values({ key: ACCOUNT_KEY_SETTING, value: generated }).onConflictDoNothing().run();
    return stored()!;
  }

  /**
   * The certificate stored under `name`, if any (whatever its CA or validity: the caller decides).
   * @throws when the stored PEM does not parse (a row edited by hand).
   */
  get(name: string): StoredCertificate | undefined {
    const row = this.db.select().from(tlsCertificates).where(eq(tlsCertificates.name, name)).get();
    return row === undefined ? undefined : toStored(row);
  }

  /** Names of the on-demand certificates obtained from `directoryUrl`, least recently stored first. */
  onDemandNames(directoryUrl: string): string[] {
    return this.db
      .select({ name: tlsCertificates.name })
      .from(tlsCertificates)
      .where(and(eq(tlsCertificates.onDemand, true), eq(tlsCertificates.directoryUrl, directoryUrl)))
      .orderBy(asc(tlsCertificates.updatedAt), asc(tlsCertificates.name))
      .all()
      .map((row) => row.name);
  }

  /** Keeps `material` under `name`, replacing what was there (one statement: a reader sees old or new). */
  put(name: string, directoryUrl: string, material: CertificateMaterial, onDemand: boolean, nowMs: number): void {
    const row = {
      name,
      directoryUrl,
      certPem: material.certPem,
      keyPem: material.keyPem,
      notBefore: unixSeconds(material.notBeforeMs),
      notAfter: unixSeconds(material.notAfterMs),
      issuer: material.issuer,
      onDemand,
      updatedAt: unixSeconds(nowMs),
    };
    this.db.insert(tlsCertificates).values(row).onConflictDoUpdate({ target: tlsCertificates.name, set: row }).run();
  }

  delete(name: string): void {
    this.db.delete(tlsCertificates).where(eq(tlsCertificates.name, name)).run();
  }
}

function toStored(row: typeof tlsCertificates.$inferSelect): StoredCertificate {
  // Names and exact times come from the certificate itself; the columns are for an operator's queries.
  const material = readCertificate(row.certPem, row.keyPem);
  return { name: row.name, directoryUrl: row.directoryUrl, material, onDemand: row.onDemand };
}
