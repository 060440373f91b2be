/**
 * Keeps each managed certificate current: serves the stored one at start (no new order after a
 * restart), orders what is missing, expired or from another CA, renews at two thirds of the life,
 * retries failures with exponential backoff, and tells the listener through `onCertificate`. A failed
 * renewal is logged at error level, with the date until which the old certificate still serves.
 * Keys and certificates are never logged.
 */
import { rfc3339, systemClock, unixSeconds, type Clock } from '../lib/clock.ts';
import type { Logger } from '../lib/logger.ts';
import type { CertificateIssuer, ChallengeType } from './acme.ts';
import { covers, nameMatches, type CertificateMaterial } from './certificate.ts';
import { DEFAULT_RETRY, renewalDueMs, retryDelayMs, type RetryPolicy } from './renewal.ts';
import type { CertificateStore, StoredCertificate } from './store.ts';

/** A certificate the manager keeps current. */
export interface ManagedName {
  /** Its key in the store and in logs: `api.example.com`, `*.expose.example.com`. */
  name: string;
  /** The names in the certificate, the first being its common name; default `[name]`. */
  names?: readonly string[];
  challenge: ChallengeType;
  /** An on-demand tunnel host's certificate (on-demand.ts): stored as such, dropped instead of renewed when unwanted. */
  onDemand?: boolean;
  /** Asked when an order falls due (renewal, retry): false drops the name instead. Default: always order. */
  keepRenewing?: () => boolean;
}

export interface CertificateManagerOptions {
  issuer: CertificateIssuer;
  store: CertificateStore;
  logger: Logger;
  clock?: Clock;
  retry?: RetryPolicy;
  /** A certificate was loaded or obtained: install it (e.g. swap the HTTPS listener's list). Called again at each renewal. */
  onCertificate?: (name: string, certificate: CertificateMaterial) => void;
  /** A certificate is no longer managed (an on-demand one evicted or not renewed): stop serving it. */
  onRemoved?: (name: string) => void;
  /** Longest single timer wait before due dates are looked at again; default MAX_SLEEP_MS. */
  maxSleepMs?: number;
}

/**
 * A sleeping timer wakes at least this often: setTimeout cannot wait longer than ~24.8 days (a 90-day
 * certificate renews in 60), and a suspended machine or a wall-clock step would otherwise oversleep.
 */
export const MAX_SLEEP_MS = 60 * 60_000;
/** Longest error text put into a log line. */
const MAX_ERROR_LOG_CHARS = 500;

/** The state of one managed certificate. */
interface Entry {
  spec: ManagedName & { names: readonly string[] };
  current: CertificateMaterial | undefined;
  /** Failed orders in a row since the last success. */
  failures: number;
  lastError: unknown;
  /** When the next order is due (renewal time, or the end of a backoff). */
  nextAttemptMs: number;
  inflight: Promise<void> | undefined;
}

/** A time in log lines: RFC 3339 UTC, whole seconds, as everywhere in the API. */
const iso = (ms: number) => rfc3339(unixSeconds(ms));
const errorText = (error: unknown) => (error instanceof Error ? error.message : String(error)).slice(0, MAX_ERROR_LOG_CHARS);

/** Orders, stores, renews and hands out certificates for a set of names. */
export class CertificateManager {
  private readonly entries = new Map<string, Entry>();
  private readonly clock: Clock;
  private readonly retry: RetryPolicy;
  private readonly maxSleepMs: number;
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** Until start(): no timer (obtain() still orders). */
  private stopped = true;

  constructor(private readonly options: CertificateManagerOptions) {
    this.clock = options.clock ?? systemClock;
    this.retry = options.retry ?? DEFAULT_RETRY;
    this.maxSleepMs = options.maxSleepMs ?? MAX_SLEEP_MS;
  }

  /**
   * Manages `spec` from now on: a stored certificate from the same CA that covers its names and has
   * not expired is served at once (onCertificate), renewed when due; otherwise an order is due now.
   * Call `renewDue()` (or `start()`) for the orders to run.
   */
  manage(spec: ManagedName): void {
    const names = spec.names ?? [spec.name];
    const entry: Entry = { spec: { ...spec, names }, current: undefined, failures: 0, lastError: undefined, nextAttemptMs: this.clock.now(), inflight: undefined };
    this.entries.set(spec.name, entry);
    let stored: StoredCertificate | undefined;
    try {
      stored = this.options.store.get(spec.name);
    } catch (error) {
      this.options.logger.warn('tls stored certificate unreadable, ordering a new one', { name: spec.name, error: errorText(error) });
    }
    if (stored === undefined) return;
    const now = this.clock.now();
    const usable = stored.directoryUrl === this.options.issuer.directoryUrl && covers(stored.material, names) && stored.material.notAfterMs > now;
    if (!usable) return;
    entry.current = stored.material;
    entry.nextAttemptMs = renewalDueMs(stored.material.notBeforeMs, stored.material.notAfterMs);
    this.options.logger.info('tls certificate loaded from the database', {
      name: spec.name,
      not_after: iso(stored.material.notAfterMs),
      renew_at: iso(entry.nextAttemptMs),
    });
    this.emit(spec.name, stored.material);
  }

  /** Stops managing `name`; with `forget`, also deletes it from the store. Tells onRemoved. */
  unmanage(name: string, forget: boolean): void {
    if (!this.entries.delete(name)) return;
    if (forget) this.options.store.delete(name);
    this.options.onRemoved?.(name);
  }

  /** Whether `name` is managed. */
  has(name: string): boolean {
    return this.entries.has(name);
  }

  /**
   * Runs the orders due now and keeps a timer for the next ones. Resolves when this first round has
   * finished, failed orders included (they are retried by the timer): the server must not wait for it,
   * since it serves HTTP-01 challenges meanwhile; tests do.
   */
  start(): Promise<void> {
    this.stopped = false;
    return this.renewDue();
  }

  /** Stops the timer; an order in flight finishes (and is stored) but nothing new starts. */
  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Starts every order that is due now (missing, renewal time reached, backoff over) and waits for them. */
  async renewDue(): Promise<void> {
    const now = this.clock.now();
    const runs: Promise<void>[] = [];
    for (const entry of [...this.entries.values()]) {
      if (entry.inflight !== undefined) {
        runs.push(entry.inflight);
        continue;
      }
      if (now < entry.nextAttemptMs) continue;
      if (entry.spec.keepRenewing?.() === false) {
        const notAfter = entry.current === undefined ? {} : { not_after: iso(entry.current.notAfterMs) };
        this.options.logger.info('tls certificate no longer wanted, not renewed', { name: entry.spec.name, ...notAfter });
        this.unmanage(entry.spec.name, true);
        continue;
      }
      runs.push(this.run(entry));
    }
    await Promise.all(runs);
    this.schedule();
  }

  /** The current certificate of `name`, if it has one. */
  certificate(name: string): CertificateMaterial | undefined {
    return this.entries.get(name)?.current;
  }

  /** Every current certificate, by managed name, in the order they were first managed. */
  certificates(): Map<string, CertificateMaterial> {
    const all = new Map<string, CertificateMaterial>();
    for (const [name, entry] of this.entries) if (entry.current !== undefined) all.set(name, entry.current);
    return all;
  }

  /**
   * A current, unexpired certificate that covers `hostname`, if any managed one does: one naming it
   * exactly first, else a wildcard (as Bun's SNI lookup prefers them).
   */
  find(hostname: string): CertificateMaterial | undefined {
    const now = this.clock.now();
    const live = [...this.entries.values()].map((e) => e.current).filter((c): c is CertificateMaterial => c !== undefined && c.notAfterMs > now);
    const exact = live.find((c) => c.names.some((n) => !n.startsWith('*.') && nameMatches(n, hostname)));
    return exact ?? live.find((c) => c.names.some((n) => nameMatches(n, hostname)));
  }

  /**
   * The certificate of managed `name`, ordering it now when it has none (joining an order in flight:
   * concurrent callers share one). While a failed order's backoff runs, fails at once with its error.
   * @throws the order's error.
   */
  async obtain(name: string): Promise<CertificateMaterial> {
    const entry = this.entries.get(name);
    if (entry === undefined) throw new Error(`${name} is not managed`);
    const now = this.clock.now();
    if (entry.current !== undefined && entry.current.notAfterMs > now) return entry.current;
    if (entry.inflight === undefined && entry.failures > 0 && now < entry.nextAttemptMs) throw entry.lastError;
    await this.run(entry);
    if (entry.current !== undefined && entry.current.notAfterMs > this.clock.now()) return entry.current;
    throw entry.lastError;
  }

  /** One order for `entry`, shared by everyone who asks while it runs. Never rejects: failures are recorded. */
  private run(entry: Entry): Promise<void> {
    entry.inflight ??= this.order(entry).finally(() => {
      entry.inflight = undefined;
      this.schedule();
    });
    return entry.inflight;
  }

  private async order(entry: Entry): Promise<void> {
    const { name, names, challenge } = entry.spec;
    const { logger, issuer, store } = this.options;
    const renewal = entry.current !== undefined;
    const startedMs = performance.now();
    try {
      const material = await issuer.issue(names, challenge);
      const now = this.clock.now();
      // A certificate for a name no longer managed (evicted while ordering) is not stored.
      if (this.entries.get(name) !== entry) return;
      store.put(name, issuer.directoryUrl, material, entry.spec.onDemand === true, now);
      entry.current = material;
      entry.failures = 0;
      entry.lastError = undefined;
      entry.nextAttemptMs = renewalDueMs(material.notBeforeMs, material.notAfterMs);
      logger.info(renewal ? 'tls certificate renewed' : 'tls certificate obtained', {
        name,
        names,
        challenge,
        issuer: material.issuer,
        not_after: iso(material.notAfterMs),
        renew_at: iso(entry.nextAttemptMs),
        ms: Math.round(performance.now() - startedMs),
      });
      this.emit(name, material);
    } catch (error) {
      entry.failures++;
      entry.lastError = error;
      const delayMs = retryDelayMs(entry.failures, this.retry);
      const now = this.clock.now();
      entry.nextAttemptMs = now + delayMs;
      const fields = {
        name,
        challenge,
        directory_url: issuer.directoryUrl,
        error: errorText(error),
        failures: entry.failures,
        retry_in_s: Math.round(delayMs / 1000),
      };
      if (entry.current !== undefined && entry.current.notAfterMs > now) {
        logger.error('TLS CERTIFICATE RENEWAL FAILED: the current certificate still serves until not_after; retrying', { ...fields, not_after: iso(entry.current.notAfterMs) });
      } else if (entry.current !== undefined) {
        logger.error('TLS CERTIFICATE EXPIRED and renewal failed: HTTPS clients refuse this name; retrying', { ...fields, not_after: iso(entry.current.notAfterMs) });
      } else {
        logger.error('tls certificate could not be obtained; retrying', fields);
      }
    }
  }

  /** Tells the listener; its failure is logged and never stops the manager. */
  private emit(name: string, material: CertificateMaterial): void {
    try {
      this.options.onCertificate?.(name, material);
    } catch (error) {
      this.options.logger.error('tls certificate could not be installed', { name, error: errorText(error) });
    }
  }

  /** Sleeps until the earliest due order (at most maxSleepMs), then runs renewDue. */
  private schedule(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.stopped || this.entries.size === 0) return;
    let next = Number.POSITIVE_INFINITY;
    for (const entry of this.entries.values()) if (entry.inflight === undefined) next = Math.min(next, entry.nextAttemptMs);
    const delayMs = Math.max(0, Math.min(next - this.clock.now(), this.maxSleepMs));
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.renewDue();
    }, delayMs);
    // The listener keeps the process alive; a timer alone must not (tests, CLI commands).
    this.timer.unref();
  }
}
