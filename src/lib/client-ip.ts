/** Client address for rate limiting: IP parsing, trusted-proxy CIDRs, X-Forwarded-For, and the bucket key. */

/** A parsed address: 4 bytes for IPv4, 16 for IPv6. */
export interface IpAddress {
  readonly version: 4 | 6;
  readonly bytes: Uint8Array;
}

/** A network: the address with its host bits cleared, and the prefix length in bits. */
export interface Cidr extends IpAddress {
  readonly prefixLength: number;
}

/** The one key shared by requests whose address is unknown. */
export const UNKNOWN_CLIENT_KEY = 'unknown';

const IPV4_PART = /^(0|[1-9]\d{0,2})$/;
const HEXTET = /^[0-9a-f]{1,4}$/i;

// Leading zeros are refused: some parsers read "010" as octal, and an address that two parsers read
// differently is a way to slip past a trust check.
function parseIPv4Bytes(text: string): Uint8Array | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  const bytes = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const part = parts[i] ?? '';
    if (!IPV4_PART.test(part) || Number(part) > 255) return undefined;
    bytes[i] = Number(part);
  }
  return bytes;
}

/** 16-bit groups of one side of an IPv6 address; the last group may be a dotted IPv4 (two groups). */
function parseHextets(text: string, allowIPv4Tail: boolean): number[] | undefined {
  if (text === '') return [];
  const parts = text.split(':');
  const groups: number[] = [];
  for (const [i, part] of parts.entries()) {
    if (allowIPv4Tail && i === parts.length - 1 && part.includes('.')) {
      const v4 = parseIPv4Bytes(part);
      if (v4 === undefined) return undefined;
      groups.push(((v4[0] ?? 0) << 8) | (v4[1] ?? 0), ((v4[2] ?? 0) << 8) | (v4[3] ?? 0));
    } else if (HEXTET.test(part)) {
      groups.push(parseInt(part, 16));
    } else {
      return undefined;
    }
  }
  return groups;
}

function parseIPv6Bytes(text: string): Uint8Array | undefined {
  // A zone id (fe80::1%eth0) names an interface of this host; it is not part of the address.
  const zoneAt = text.indexOf('%');
  const address = zoneAt === -1 ? text : text.slice(0, zoneAt);
  const halves = address.split('::');
  if (halves.length > 2) return undefined;
  const compressed = halves.length === 2;
  const head = parseHextets(halves[0] ?? '', !compressed);
  const tail = compressed ? parseHextets(halves[1] ?? '', true) : [];
  if (head === undefined || tail === undefined) return undefined;
  const explicitGroups = head.length + tail.length;
  // "::" stands for at least one zero group; without it, all eight must be written.
  if (compressed ? explicitGroups > 7 : explicitGroups !== 8) return undefined;
  const groups = [...head, ...new Array<number>(8 - explicitGroups).fill(0), ...tail];
  const bytes = new Uint8Array(16);
  for (const [i, group] of groups.entries()) {
    bytes[2 * i] = group >> 8;
    bytes[2 * i + 1] = group & 0xff;
  }
  return bytes;
}

function parseIpUnfolded(text: string): IpAddress | undefined {
  if (text.includes(':')) {
    const bytes = parseIPv6Bytes(text);
    return bytes && { version: 6, bytes };
  }
  const bytes = parseIPv4Bytes(text);
  return bytes && { version: 4, bytes };
}

function isIPv4Mapped(address: IpAddress): boolean {
  const b = address.bytes;
  return address.version === 6 && b.subarray(0, 10).every((byte) => byte === 0) && b[10] === 0xff && b[11] === 0xff;
}

/**
 * Parses a bare IPv4 or IPv6 address (`::` compression, an IPv4 tail, a `%zone` suffix which is dropped).
 * An IPv4-mapped IPv6 address (::ffff:1.2.3.4) comes back as the IPv4 address: one client, one key.
 * Returns undefined for anything else, surrounding whitespace included.
 */
export function parseIp(text: string): IpAddress | undefined {
  const address = parseIpUnfolded(text);
  if (address === undefined || !isIPv4Mapped(address)) return address;
  return { version: 4, bytes: address.bytes.slice(12) };
}

/** Canonical text: dotted decimal for IPv4, RFC 5952 for IPv6 (lower case, longest zero run as `::`). */
export function formatIp(address: IpAddress): string {
  if (address.version === 4) return address.bytes.join('.');
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((address.bytes[i] ?? 0) << 8) | (address.bytes[i + 1] ?? 0));
  let bestStart = -1;
  let bestLength = 1; // RFC 5952: a single zero group is written as 0, never as ::
  for (let start = 0; start < 8; start++) {
    let length = 0;
    while (start + length < 8 && groups[start + length] === 0) length++;
    if (length > bestLength) [bestStart, bestLength] = [start, length];
  }
  const hex = (part: number[]) => part.map((group) => group.toString(16)).join(':');
  if (bestStart === -1) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLength))}`;
}

/** Copy of `address` with every bit after the first `prefixLength` cleared. */
function maskTo(address: IpAddress, prefixLength: number): Uint8Array {
  const bytes = address.bytes.slice();
  for (let i = 0; i < bytes.length; i++) {
    const keepBits = Math.min(8, Math.max(0, prefixLength - 8 * i));
    bytes[i] = (bytes[i] ?? 0) & ((0xff << (8 - keepBits)) & 0xff);
  }
  return bytes;
}

function invalidCidr(entry: string, why: string): Error {
  return new Error(`invalid CIDR "${entry}": ${why} (expected e.g. 10.0.0.0/8, 192.168.1.5 or fd00::/8)`);
}

function parseCidr(entry: string): Cidr {
  const [addressText = '', prefixText, ...rest] = entry.split('/');
  if (rest.length > 0) throw invalidCidr(entry, 'more than one "/"');
  const address = parseIpUnfolded(addressText);
  if (address === undefined) throw invalidCidr(entry, `"${addressText}" is not an IPv4 or IPv6 address`);
  const maxLength = address.version === 4 ? 32 : 128;
  if (prefixText !== undefined && !/^\d{1,3}$/.test(prefixText)) throw invalidCidr(entry, 'the prefix length must be a number');
  const prefixLength = prefixText === undefined ? maxLength : Number(prefixText);
  if (prefixLength > maxLength) throw invalidCidr(entry, `the prefix length must be at most ${maxLength}`);
  // Peers are matched after folding ::ffff:a.b.c.d to IPv4, so a mapped network is folded the same way.
  if (isIPv4Mapped(address) && prefixLength >= 96) {
    const v4: IpAddress = { version: 4, bytes: address.bytes.slice(12) };
    return { version: 4, bytes: maskTo(v4, prefixLength - 96), prefixLength: prefixLength - 96 };
  }
  // Host bits are cleared rather than refused, as most tools do: 192.168.1.7/24 means 192.168.1.0/24.
  return { version: address.version, bytes: maskTo(address, prefixLength), prefixLength };
}

/**
 * Parses a comma-separated CIDR list (the EXPOSE_TRUSTED_PROXIES setting). Whitespace and empty
 * entries are ignored; a bare address means a single host (/32 or /128).
 * @throws Error naming the first invalid entry.
 */
export function parseCidrList(text: string): Cidr[] {
  return text
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '')
    .map(parseCidr);
}

/** Whether `address` lies in `cidr`. IPv4 addresses (mapped ones included) match only IPv4 networks. */
export function cidrContains(cidr: Cidr, address: IpAddress): boolean {
  if (cidr.version !== address.version) return false;
  const masked = maskTo(address, cidr.prefixLength);
  return masked.every((byte, i) => byte === cidr.bytes[i]);
}

function isTrusted(address: IpAddress, trusted: readonly Cidr[]): boolean {
  return trusted.some((cidr) => cidrContains(cidr, address));
}

/**
 * One address as proxies write it: bare, `[v6]`, `[v6]:port` or `v4:port` (some proxies add the port).
 */
function parseHost(text: string): IpAddress | undefined {
  const host = text.trim();
  const bracketed = /^\[([^\]]+)\](?::\d{1,5})?$/.exec(host);
  if (bracketed) return parseIp(bracketed[1] ?? '');
  const withPort = /^([\d.]+):\d{1,5}$/.exec(host);
  return parseIp(withPort ? (withPort[1] ?? '') : host);
}

/**
 * The client's address, in canonical form: the socket peer, unless the peer is a trusted proxy.
 * Then X-Forwarded-For is walked right to left (each proxy appends the address it saw) past trusted
 * hops, and the first untrusted address is the client; if every hop is trusted, the leftmost one.
 * Entries to the left of an untrusted one are ignored: the client could have written them itself.
 * An unparsable entry stops the walk at the last trusted hop, the nearest address we can vouch for,
 * so garbage never becomes a key. Undefined only when the socket address is missing or unparsable.
 */
export function clientIp(socketAddress: string | undefined, forwardedFor: string | null, trusted: readonly Cidr[]): string | undefined {
  const peer = socketAddress === undefined ? undefined : parseHost(socketAddress);
  if (peer === undefined) return undefined;
  if (forwardedFor === null || !isTrusted(peer, trusted)) return formatIp(peer);
  let nearestTrusted = peer;
  const hops = forwardedFor.split(',');
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = parseHost(hops[i] ?? '');
    if (hop === undefined) break;
    if (!isTrusted(hop, trusted)) return formatIp(hop);
    nearestTrusted = hop;
  }
  return formatIp(nearestTrusted);
}

/**
 * The rate-limit key for a client address. IPv4 as is; IPv6 by /64 (`2001:db8:1:2::/64`), because
 * one subscriber usually gets a whole /64 and could otherwise rotate through 2^64 keys.
 * A missing or unparsable address maps to one shared `unknown` key. That only happens without a
 * socket address (e.g. an app called directly in tests; a real listener always has one, and `clientIp` never
 * returns garbage), so sharing one bucket there costs nothing and cannot be abused from the network.
 */
export function rateLimitKey(ip: string | undefined): string {
  const address = ip === undefined ? undefined : parseIp(ip);
  if (address === undefined) return UNKNOWN_CLIENT_KEY;
  if (address.version === 4) return formatIp(address);
  return `${formatIp({ version: 6, bytes: maskTo(address, 64) })}/64`;
}
