/** Client address: IP parsing and formatting, the trusted-proxy list, X-Forwarded-For walking, and the rate-limit key. */
import { describe, expect, it } from 'bun:test';
import fc from 'fast-check';
import {
  cidrContains,
  clientIp,
  formatIp,
  parseCidrList,
  parseIp,
  rateLimitKey,
  UNKNOWN_CLIENT_KEY,
} from '../../src/lib/client-ip.ts';

const canonical = (text: string): string | undefined => {
  const address = parseIp(text);
  return address && formatIp(address);
};

const ipv4Arb = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((parts) => parts.join('.'));
const ipv6BytesArb = fc.uint8Array({ minLength: 16, maxLength: 16 });
/** Uncompressed IPv6 text of 16 random bytes, e.g. 0a1b:0000:...; IPv4-mapped ones left out (they fold). */
const ipv6Arb = ipv6BytesArb
  .filter((bytes) => !(bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff))
  .map((bytes) => Array.from({ length: 8 }, (_, i) => ((bytes[2 * i]! << 8) | bytes[2 * i + 1]!).toString(16).padStart(4, '0')).join(':'));

describe('parseIp', () => {
  it('parses dotted IPv4', () => {
    expect(parseIp('192.168.1.20')).toEqual({ version: 4, bytes: new Uint8Array([192, 168, 1, 20]) });
    expect(canonical('0.0.0.0')).toBe('0.0.0.0');
    expect(canonical('255.255.255.255')).toBe('255.255.255.255');
  });

  it('refuses malformed IPv4, including leading zeros that some parsers read as octal', () => {
    for (const text of ['1.2.3', '1.2.3.4.5', '256.1.1.1', '010.0.0.1', '1.2.3.-4', '1.2.3.4 ', ' 1.2.3.4', '1..2.3', '0x7f.0.0.1', '']) {
      expect(parseIp(text)).toBeUndefined();
    }
  });

  it('parses IPv6 with and without :: compression, in any case', () => {
    expect(canonical('2001:0DB8:0000:0000:0000:0000:0000:0001')).toBe('2001:db8::1');
    expect(canonical('::')).toBe('::');
    expect(canonical('::1')).toBe('::1');
    expect(canonical('fe80::')).toBe('fe80::');
    expect(canonical('1:2:3:4:5:6:7::')).toBe('1:2:3:4:5:6:7:0');
    expect(canonical('::2:3:4:5:6:7:8')).toBe('0:2:3:4:5:6:7:8');
    expect(canonical('2001:db8:0:0:1:0:0:1')).toBe('2001:db8::1:0:0:1');
    expect(canonical('2001:0:0:1:0:0:0:1')).toBe('2001:0:0:1::1');
  });

  it('parses an embedded IPv4 tail', () => {
    expect(canonical('64:ff9b::192.0.2.33')).toBe('64:ff9b::c000:221');
    expect(canonical('1:2:3:4:5:6:1.2.3.4')).toBe('1:2:3:4:5:6:102:304');
  });

  it('strips a zone id', () => {
    expect(canonical('fe80::1%eth0')).toBe('fe80::1');
  });

  it('folds an IPv4-mapped IPv6 address to IPv4', () => {
    expect(canonical('::ffff:203.0.113.9')).toBe('203.0.113.9');
    expect(canonical('::FFFF:cb00:7109')).toBe('203.0.113.9');
  });

  it('refuses malformed IPv6', () => {
    for (const text of [
      '1::2::3', ':1:2:3:4:5:6:7', '1:2:3:4:5:6:7:', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7', '12345::', 'g::1', ':::',
      '1:2:3:4:5:6:7:8::', '::1.2.3', '1.2.3.4::', '::1.2.3.4:5', '[::1]', '::1 ', '%eth0',
    ]) {
      expect(parseIp(text)).toBeUndefined();
    }
  });

  it('formats every IPv4 back to the same text', () => {
    fc.assert(fc.property(ipv4Arb, (text) => expect(canonical(text)).toBe(text)));
  });

  it('reads back its own canonical IPv6 text as the same address', () => {
    fc.assert(
      fc.property(ipv6Arb, (text) => {
        const address = parseIp(text);
        expect(address?.version).toBe(6);
        const formatted = formatIp(address!);
        expect(parseIp(formatted)).toEqual(address);
        expect(formatted).toBe(formatted.toLowerCase());
        expect(formatted).not.toMatch(/(^|:)0[0-9a-f]/);
        expect(formatted.split('::').length).toBeLessThanOrEqual(2);
      }),
    );
  });
});

describe('parseCidrList', () => {
  it('parses a comma-separated list with whitespace; a bare address is a single host', () => {
    const list = parseCidrList(' 10.0.0.0/8 , 192.168.1.5,fd00::/8 ,  ::1 ');
    expect(list.map((cidr) => `${formatIp(cidr)}/${cidr.prefixLength}`)).toEqual(['10.0.0.0/8', '192.168.1.5/32', 'fd00::/8', '::1/128']);
  });

  it('is empty for an empty setting and ignores empty entries', () => {
    expect(parseCidrList('')).toEqual([]);
    expect(parseCidrList(' , ')).toEqual([]);
    expect(parseCidrList('10.0.0.0/8,')).toHaveLength(1);
  });

  it('clears host bits', () => {
    const [cidr] = parseCidrList('192.168.1.77/24');
    expect(formatIp(cidr!)).toBe('192.168.1.0');
  });

  it('folds an IPv4-mapped network to IPv4', () => {
    const [cidr] = parseCidrList('::ffff:10.0.0.0/104');
    expect(cidr).toMatchObject({ version: 4, prefixLength: 8 });
  });

  it('throws a message naming the invalid entry', () => {
    for (const entry of ['10.0.0.0/33', '::/129', 'bogus', '10.0.0.0/', '/8', '10.0.0.0/8/8', '10.0.0.0/-1', '10.0.0.0/8a', '10.0.0.1/ 8']) {
      expect(() => parseCidrList(`127.0.0.1, ${entry}`)).toThrow(`invalid CIDR "${entry}"`);
    }
  });
});

describe('cidrContains', () => {
  it('matches addresses inside the prefix only', () => {
    const [v4, v6] = parseCidrList('10.1.0.0/17, 2001:db8::/33');
    expect(cidrContains(v4!, parseIp('10.1.127.255')!)).toBe(true);
    expect(cidrContains(v4!, parseIp('10.1.128.0')!)).toBe(false);
    expect(cidrContains(v6!, parseIp('2001:db8:7fff::1')!)).toBe(true);
    expect(cidrContains(v6!, parseIp('2001:db8:8000::1')!)).toBe(false);
    expect(cidrContains(v6!, parseIp('10.1.0.1')!)).toBe(false);
  });

  it('matches everything with a /0 of the same family', () => {
    const [all] = parseCidrList('0.0.0.0/0');
    fc.assert(fc.property(ipv4Arb, (text) => expect(cidrContains(all!, parseIp(text)!)).toBe(true)));
  });
});

describe('clientIp', () => {
  const proxies = parseCidrList('10.0.0.0/8, fd00::/8');

  it('is the socket address when no proxy is trusted, whatever X-Forwarded-For says', () => {
    expect(clientIp('203.0.113.9', '1.1.1.1', [])).toBe('203.0.113.9');
  });

  it('ignores X-Forwarded-For spoofed by an untrusted peer', () => {
    expect(clientIp('203.0.113.9', '10.0.0.1, 1.1.1.1', proxies)).toBe('203.0.113.9');
  });

  it('honours X-Forwarded-For from a trusted proxy', () => {
    expect(clientIp('10.0.0.2', '198.51.100.7', proxies)).toBe('198.51.100.7');
  });

  it('walks right to left past trusted hops and ignores what the client wrote further left', () => {
    expect(clientIp('10.0.0.2', '1.1.1.1, 198.51.100.7, 10.9.9.9, fd00::5', proxies)).toBe('198.51.100.7');
  });

  it('takes the leftmost address when every hop is trusted', () => {
    expect(clientIp('10.0.0.2', '10.0.0.7, 10.0.0.8', proxies)).toBe('10.0.0.7');
  });

  it('stops at an unparsable entry and answers the last trusted hop', () => {
    expect(clientIp('10.0.0.2', '198.51.100.7, garbage, 10.0.0.3', proxies)).toBe('10.0.0.3');
    expect(clientIp('10.0.0.2', 'unknown', proxies)).toBe('10.0.0.2');
    expect(clientIp('10.0.0.2', '', proxies)).toBe('10.0.0.2');
    expect(clientIp('10.0.0.2', '198.51.100.7,,', proxies)).toBe('10.0.0.2');
  });

  it('is the trusted peer when there is no X-Forwarded-For', () => {
    expect(clientIp('10.0.0.2', null, proxies)).toBe('10.0.0.2');
  });

  it('never answers anything but a canonical address, whatever the header holds', () => {
    const entryArb = fc.oneof(ipv4Arb, ipv6Arb, fc.constantFrom('10.0.0.4', 'fd00::9', '[::1]:80', '1.2.3.4:8080'), fc.string());
    fc.assert(
      fc.property(fc.array(entryArb, { maxLength: 6 }), (entries) => {
        const ip = clientIp('10.0.0.2', entries.join(','), proxies);
        expect(ip).toBeDefined();
        expect(canonical(ip!)).toBe(ip);
      }),
    );
  });

  it('folds an IPv4-mapped socket address to IPv4 and matches it against IPv4 proxies', () => {
    expect(clientIp('::ffff:203.0.113.9', null, [])).toBe('203.0.113.9');
    expect(clientIp('::ffff:10.0.0.2', '198.51.100.7', proxies)).toBe('198.51.100.7');
  });

  it('accepts ports and brackets that some proxies add', () => {
    expect(clientIp('10.0.0.2', '198.51.100.7:51234', proxies)).toBe('198.51.100.7');
    expect(clientIp('10.0.0.2', '[2001:DB8::7]:443', proxies)).toBe('2001:db8::7');
  });

  it('is undefined without a usable socket address', () => {
    expect(clientIp(undefined, '198.51.100.7', proxies)).toBeUndefined();
    expect(clientIp('not-an-ip', null, proxies)).toBeUndefined();
  });
});

describe('rateLimitKey', () => {
  it('keys IPv4 by the address itself', () => {
    expect(rateLimitKey('203.0.113.9')).toBe('203.0.113.9');
  });

  it('groups IPv6 by /64', () => {
    expect(rateLimitKey('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64');
    expect(rateLimitKey('2001:db8:1:2:bbbb:cccc:dddd:eeee')).toBe('2001:db8:1:2::/64');
    expect(rateLimitKey('2001:db8:1:3::1')).toBe('2001:db8:1:3::/64');
    expect(rateLimitKey('fe80::1%eth0')).toBe('fe80::/64');
  });

  it('gives every address of a /64 the same key, one that names a network containing it', () => {
    fc.assert(
      fc.property(ipv6Arb, ipv6BytesArb, (text, lowBytes) => {
        const address = parseIp(text)!;
        const sibling = formatIp({ version: 6, bytes: new Uint8Array([...address.bytes.subarray(0, 8), ...lowBytes.subarray(8)]) });
        // ::ffff:a.b.c.d is an IPv4 client, keyed as such even though it lies in ::/64.
        fc.pre(parseIp(sibling)?.version === 6);
        const key = rateLimitKey(text);
        expect(rateLimitKey(sibling)).toBe(key);
        const [network] = parseCidrList(key);
        expect(network?.prefixLength).toBe(64);
        expect(cidrContains(network!, address)).toBe(true);
      }),
    );
  });

  it('folds an IPv4-mapped address to its IPv4 key', () => {
    expect(rateLimitKey('::ffff:203.0.113.9')).toBe('203.0.113.9');
  });

  it('maps a missing or unparsable address to the one unknown key', () => {
    expect(rateLimitKey(undefined)).toBe(UNKNOWN_CLIENT_KEY);
    expect(rateLimitKey('garbage')).toBe(UNKNOWN_CLIENT_KEY);
    expect(UNKNOWN_CLIENT_KEY).toBe('unknown');
  });
});
