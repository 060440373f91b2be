/**
 * The tunnel side of one server: the registry of live tunnels, every control session (registered or
 * not), the watch that ends tunnels whose key or user is gone, and shutdown. It is also the
 * TunnelDirectory the tunnels API reads.
 */
import type { Principal } from '../http/auth.ts';
import type { Logger } from '../lib/logger.ts';
import type { TunnelDirectory } from '../modules/tunnels/service.ts';
import { MemoryTunnelRegistry } from './registry.ts';
import { type LiveTunnel, TunnelSession } from './session.ts';
import type { TunnelSettings } from './settings.ts';

/** What the relay needs from the rest of the server. */
export interface RelayDeps {
  settings: TunnelSettings;
  authenticate(credential: string): Promise<Principal | null>;
  /** Of these API key ids, those that still authenticate (key not deleted, user neither deleted nor disabled). */
  liveKeyIds(ids: string[]): Set<string>;
  /** A number that moves whenever the database may have changed (src/db/change-watch.ts). */
  dataGeneration(): number;
  logger: Logger;
  now(): number;
  /** A tunnel was registered at `subdomain` (TLS on demand orders its certificate). */
  tunnelRegistered?(subdomain: string): void;
}

/** Live tunnels and their sessions. */
export class TunnelRelay implements TunnelDirectory {
  readonly registry = new MemoryTunnelRegistry<LiveTunnel>();
  private readonly sessions = new Set<TunnelSession>();
  private watch: Timer | undefined;
  private seenGeneration = -1;

  constructor(private readonly deps: RelayDeps) {}

  get settings(): TunnelSettings {
    return this.deps.settings;
  }

  /** A new control connection from `clientIp`. */
  newSession(clientIp: string): TunnelSession {
    const session = new TunnelSession(
      {
        authenticate: (credential) => this.deps.authenticate(credential),
        registry: this.registry,
        settings: this.deps.settings,
        now: this.deps.now,
        logger: this.deps.logger,
        closed: (s) => this.sessions.delete(s),
        registered: (tunnel) => this.deps.tunnelRegistered?.(tunnel.subdomain),
      },
      clientIp,
    );
    this.sessions.add(session);
    return session;
  }

  /** Control connections open now (authenticated or not). */
  get sessionCount(): number {
    return this.sessions.size;
  }

  ofUser(userId: string): LiveTunnel[] {
    return this.registry.byUser(userId);
  }

  closeByOwner(id: string): void {
    const tunnel = this.registry.byId(id);
    if (tunnel) tunnel.session.goAway('closed_by_owner');
  }

  /**
   * Starts checking, every `revocationCheckMs` and only when the database changed, that each
   * connection's key still authenticates. That one check covers a key deleted through the API, a user
   * deleted or disabled by the CLI in another process, or rows removed with sqlite3.
   */
  start(): void {
    this.watch ??= setInterval(() => this.checkRevocations(), this.deps.settings.revocationCheckMs);
  }

  /**
   * Ends the connections whose key no longer authenticates, and drops the grace holds made with such
   * keys: no grace follows a revocation, the subdomain answers 404 at once.
   */
  checkRevocations(): void {
    this.registry.sweep(this.deps.now());
    const generation = this.deps.dataGeneration();
    if (generation === this.seenGeneration) return;
    this.seenGeneration = generation;
    const authenticated = [...this.sessions].filter((s) => s.principal !== undefined);
    const heldKeys = this.registry.heldKeyIds();
    if (authenticated.length === 0 && heldKeys.length === 0) return;
    const keyIds = [...new Set([...authenticated.map((s) => s.principal!.keyId), ...heldKeys])];
    const live = this.deps.liveKeyIds(keyIds);
    const revoked = new Set(keyIds.filter((id) => !live.has(id)));
    if (revoked.size === 0) return;
    this.registry.dropHoldsOfKeys(revoked);
    for (const session of authenticated) {
      if (!revoked.has(session.principal!.keyId)) continue;
      this.deps.logger.info('tunnel credential revoked', { tunnel_id: session.tunnel?.id, api_key_id: session.principal!.keyId });
      session.goAway('revoked');
    }
  }

  /** Server shutdown: GoAway and close 1001 to every connection, so none holds the drain open. */
  shutdown(): void {
    clearInterval(this.watch);
    for (const session of [...this.sessions]) session.goAway('shutdown');
  }
}
