/**
 * Who is calling, by network address: the socket peer, or behind a trusted proxy the client that
 * X-Forwarded-For names. One lookup serves both the access log (the canonical address) and the rate
 * limiter (the bucket key of an anonymous caller), so a request's address is read and parsed once.
 */
import { clientIp, rateLimitKey, type Cidr } from '../lib/client-ip.ts';

/** The peer address of a request as the listener saw it; tests inject one, as an app called directly has no socket. */
export type SocketAddress = (request: Request) => string | undefined;

/** A caller's address, in both forms the server uses. */
export interface ClientAddress {
  /** Canonical address, for the log; undefined only without a socket address (an app called directly, in tests). */
  readonly ip: string | undefined;
  /** The rate-limit bucket of an anonymous caller: `ip:` and the address, IPv6 by /64. */
  readonly key: string;
}

/**
 * Socket addresses whose answer is remembered. A keep-alive client sends many requests from one
 * address, and parsing and formatting it each time is a measurable share of a cheap request. The
 * table is emptied when full, so a flood of new addresses cannot grow it.
 */
const MEMO_MAX_ENTRIES = 1024;

/** Resolves requests to client addresses, believing X-Forwarded-For only from `trustedProxies`. */
export class ClientAddresses {
  // Only for requests without X-Forwarded-For: then the answer depends on the socket address alone.
  private readonly memo = new Map<string, ClientAddress>();

  constructor(
    private readonly socketAddress: SocketAddress,
    private readonly trustedProxies: readonly Cidr[],
  ) {}

  /**
   * The caller of `request`. Read it while the request is open: once the answer is sent the socket may
   * be gone. A caller that already has the socket address passes it (each lookup is a system call).
   */
  of(request: Request, socketAddress: string | undefined = this.socketAddress(request)): ClientAddress {
    const forwardedFor = request.headers.get('x-forwarded-for');
    if (forwardedFor !== null || socketAddress === undefined) return this.resolve(socketAddress, forwardedFor);
    let found = this.memo.get(socketAddress);
    if (found === undefined) {
      found = this.resolve(socketAddress, null);
      if (this.memo.size >= MEMO_MAX_ENTRIES) this.memo.clear();
      this.memo.set(socketAddress, found);
    }
    return found;
  }

  private resolve(socketAddress: string | undefined, forwardedFor: string | null): ClientAddress {
    const ip = clientIp(socketAddress, forwardedFor, this.trustedProxies);
    return { ip, key: `ip:${rateLimitKey(ip)}` };
  }
}
