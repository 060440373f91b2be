/** The caller's live tunnels: list, one, close. No Elysia here; the tunnel relay supplies the state. */
import { rfc3339, unixSeconds } from '../../lib/clock.ts';
import { notFound } from '../../http/errors.ts';

/** What the tunnels API shows of a live tunnel (the contract's `tunnel` object). */
export interface TunnelView {
  id: string;
  subdomain: string;
  public_url: string;
  local_port: number;
  api_key_id: string;
  connected_at: string;
  bytes_in: number;
  bytes_out: number;
  request_count: number;
  active_streams: number;
}

/** A live tunnel as the relay knows it. */
export interface TunnelState {
  readonly id: string;
  readonly subdomain: string;
  readonly publicUrl: string;
  readonly localPort: number;
  readonly keyId: string;
  readonly connectedAtMs: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly requestCount: number;
  readonly activeStreams: number;
}

/** The live tunnels of this server, as the relay (src/tunnel/relay.ts) offers them to the API. */
export interface TunnelDirectory {
  ofUser(userId: string): TunnelState[];
  /** Closes tunnel `id` for its owner (GoAway closed_by_owner, close 4010). */
  closeByOwner(id: string): void;
}

/** A directory with no tunnels: for an app that runs without the relay (tests of the API alone). */
export const NO_TUNNELS: TunnelDirectory = { ofUser: () => [], closeByOwner: () => {} };

export const TUNNEL_NOT_FOUND = 'Tunnel not found';

function toView(tunnel: TunnelState): TunnelView {
  return {
    id: tunnel.id,
    subdomain: tunnel.subdomain,
    public_url: tunnel.publicUrl,
    local_port: tunnel.localPort,
    api_key_id: tunnel.keyId,
    connected_at: rfc3339(unixSeconds(tunnel.connectedAtMs)),
    bytes_in: tunnel.bytesIn,
    bytes_out: tunnel.bytesOut,
    request_count: tunnel.requestCount,
    active_streams: tunnel.activeStreams,
  };
}

/** Tunnels seen through their owner. */
export class TunnelService {
  constructor(private readonly directory: TunnelDirectory) {}

  /** The user's live tunnels, newest first. */
  list(userId: string): TunnelView[] {
    return this.directory
      .ofUser(userId)
      .toSorted((a, b) => b.connectedAtMs - a.connectedAtMs || (a.id < b.id ? 1 : -1))
      .map(toView);
  }

  /** One of the user's tunnels; another user's is "not found" too. */
  get(userId: string, id: string): TunnelView {
    const tunnel = this.directory.ofUser(userId).find((t) => t.id === id);
    if (!tunnel) throw notFound(TUNNEL_NOT_FOUND);
    return toView(tunnel);
  }

  /** Closes one of the user's tunnels. */
  close(userId: string, id: string): void {
    if (!this.directory.ofUser(userId).some((t) => t.id === id)) throw notFound(TUNNEL_NOT_FOUND);
    this.directory.closeByOwner(id);
  }
}
