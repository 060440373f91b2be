/**
 * The live-tunnel registry: which subdomain belongs to which tunnel, and which subdomains are held for
 * an owner whose tunnel dropped (the grace time). In memory, behind the small interface a shared store
 * (Redis, for several servers) would implement: claim, release, lookup. Nothing else reaches its maps.
 */

/** What the registry needs to know about a live tunnel. */
export interface RegisteredTunnel {
  readonly id: string;
  readonly subdomain: string;
  readonly userId: string;
  /** The token its owner presents to get the subdomain back after a drop. */
  readonly resumeToken: string;
  /** The API key it connected with: a hold ends when that key stops authenticating. */
  readonly keyId: string;
}

/** A subdomain held for its owner after an unexplained drop, until `untilMs`. */
export interface HeldSubdomain {
  readonly subdomain: string;
  readonly userId: string;
  readonly keyId: string;
  readonly resumeToken: string;
  readonly untilMs: number;
}

/** What a subdomain resolves to right now. */
export type Lookup<T extends RegisteredTunnel> = { state: 'live'; tunnel: T } | { state: 'held'; held: HeldSubdomain } | { state: 'free' };

/** The outcome of a claim. `replaced` is the same user's live tunnel that the new one displaces. */
export type Claim<T extends RegisteredTunnel> = { ok: true; replaced?: T } | { ok: false; error: 'subdomain_taken' | 'too_many_tunnels' };

/** The registry's interface (one in-memory implementation today). */
export interface TunnelRegistry<T extends RegisteredTunnel> {
  claim(tunnel: T, maxPerUser: number, nowMs: number): Claim<T>;
  release(tunnel: T, hold: { resumeToken: string; untilMs: number } | undefined): void;
  lookup(subdomain: string, nowMs: number): Lookup<T>;
  heldFor(userId: string, resumeToken: string, nowMs: number): string | undefined;
  sweep(nowMs: number): void;
  heldKeyIds(): string[];
  dropHoldsOfKeys(keyIds: ReadonlySet<string>): void;
  byId(id: string): T | undefined;
  byUser(userId: string): T[];
  all(): T[];
}

/** In-memory registry for one server process. */
export class MemoryTunnelRegistry<T extends RegisteredTunnel> implements TunnelRegistry<T> {
  private readonly live = new Map<string, T>();
  private readonly ids = new Map<string, T>();
  private readonly held = new Map<string, HeldSubdomain>();

  /**
   * Gives `tunnel.subdomain` to `tunnel` when it is free, held for the same user, or live for the same
   * user (that tunnel is then `replaced`: the caller closes it). Another user's live or held subdomain
   * is taken. `maxPerUser` (0 = no limit) counts the user's live tunnels, not the one being replaced.
   */
  claim(tunnel: T, maxPerUser: number, nowMs: number): Claim<T> {
    const current = this.lookup(tunnel.subdomain, nowMs);
    if (current.state === 'live' && current.tunnel.userId !== tunnel.userId) return { ok: false, error: 'subdomain_taken' };
    if (current.state === 'held' && current.held.userId !== tunnel.userId) return { ok: false, error: 'subdomain_taken' };
    const replaced = current.state === 'live' ? current.tunnel : undefined;
    if (maxPerUser > 0) {
      const others = this.byUser(tunnel.userId).filter((t) => t !== replaced).length;
      if (others >= maxPerUser) return { ok: false, error: 'too_many_tunnels' };
    }
    if (replaced) this.ids.delete(replaced.id);
    this.held.delete(tunnel.subdomain);
    this.live.set(tunnel.subdomain, tunnel);
    this.ids.set(tunnel.id, tunnel);
    return replaced ? { ok: true, replaced } : { ok: true };
  }

  /** Frees the tunnel's subdomain, or holds it for its owner when `hold` is given. A replaced tunnel releases nothing. */
  release(tunnel: T, hold: { resumeToken: string; untilMs: number } | undefined): void {
    if (this.ids.get(tunnel.id) !== tunnel) return;
    this.ids.delete(tunnel.id);
    this.live.delete(tunnel.subdomain);
    if (hold) this.held.set(tunnel.subdomain, { subdomain: tunnel.subdomain, userId: tunnel.userId, keyId: tunnel.keyId, ...hold });
  }

  /** What `subdomain` is now; a hold past its time is forgotten here. */
  lookup(subdomain: string, nowMs: number): Lookup<T> {
    const tunnel = this.live.get(subdomain);
    if (tunnel) return { state: 'live', tunnel };
    const held = this.held.get(subdomain);
    if (held === undefined) return { state: 'free' };
    if (nowMs >= held.untilMs) {
      this.held.delete(subdomain);
      return { state: 'free' };
    }
    return { state: 'held', held };
  }

  /** Forgets every hold past its time; call now and then so abandoned holds do not pile up. */
  sweep(nowMs: number): void {
    for (const [subdomain, held] of this.held) if (nowMs >= held.untilMs) this.held.delete(subdomain);
  }

  /**
   * The subdomain held for `userId` under `resumeToken`, if its time has not run out; or the subdomain
   * of that user's live tunnel with this token. A client often resumes before the server has noticed
   * its old connection died (half-open, or the close still in flight): without the live match it would
   * get a fresh generated name and lose its subdomain. Claiming it then replaces the stale tunnel.
   */
  heldFor(userId: string, resumeToken: string, nowMs: number): string | undefined {
    for (const held of this.held.values()) {
      if (held.userId === userId && held.resumeToken === resumeToken && nowMs < held.untilMs) return held.subdomain;
    }
    for (const tunnel of this.live.values()) {
      if (tunnel.userId === userId && tunnel.resumeToken === resumeToken) return tunnel.subdomain;
    }
    return undefined;
  }

  /** The API keys behind current holds, for the revocation check. */
  heldKeyIds(): string[] {
    return [...new Set([...this.held.values()].map((held) => held.keyId))];
  }

  /** Drops the holds made with any of `keyIds` (revocation: no grace follows, the name answers 404). */
  dropHoldsOfKeys(keyIds: ReadonlySet<string>): void {
    for (const [subdomain, held] of this.held) if (keyIds.has(held.keyId)) this.held.delete(subdomain);
  }

  byId(id: string): T | undefined {
    return this.ids.get(id);
  }

  byUser(userId: string): T[] {
    return [...this.live.values()].filter((t) => t.userId === userId);
  }

  all(): T[] {
    return [...this.live.values()];
  }

  /** Holds currently kept; for tests and memory checks. */
  get heldCount(): number {
    return this.held.size;
  }
}
