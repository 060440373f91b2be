import { describe, expect, it } from 'bun:test';
import { ClientAddresses } from '../../src/http/client-address.ts';
import { parseCidrList } from '../../src/lib/client-ip.ts';

/** A lookup whose socket address is whatever `peer.address` says, counting how often it is read. */
function lookup(trusted = '') {
  const peer = { address: '203.0.113.5' as string | undefined, reads: 0 };
  const addresses = new ClientAddresses(() => {
    peer.reads++;
    return peer.address;
  }, parseCidrList(trusted));
  const request = (headers: Record<string, string> = {}) => new Request('http://localhost/api/v1/users/me', { headers });
  return { peer, addresses, request };
}

describe('ClientAddresses', () => {
  it('gives the canonical address for the log and the /64 bucket for the limiter', () => {
    const { peer, addresses, request } = lookup();
    peer.address = '2001:0db8:0001:0002:0000:0000:0000:0007';
    expect(addresses.of(request())).toEqual({ ip: '2001:db8:1:2::7', key: 'ip:2001:db8:1:2::/64' });
    peer.address = '::ffff:198.51.100.9';
    expect(addresses.of(request())).toEqual({ ip: '198.51.100.9', key: 'ip:198.51.100.9' });
  });

  it('reads the socket address on every request, so a remembered answer never outlives its peer', () => {
    const { peer, addresses, request } = lookup();
    expect(addresses.of(request()).ip).toBe('203.0.113.5');
    peer.address = '198.51.100.1';
    expect(addresses.of(request()).ip).toBe('198.51.100.1');
    peer.address = '203.0.113.5';
    expect(addresses.of(request()).ip).toBe('203.0.113.5');
    expect(peer.reads).toBe(3);
  });

  it('answers by X-Forwarded-For from a trusted proxy, whatever the same proxy sent before', () => {
    const { peer, addresses, request } = lookup('10.0.0.0/8');
    peer.address = '10.0.0.1';
    // The proxy's own health check (no header) must not decide the answer for the clients behind it.
    expect(addresses.of(request()).ip).toBe('10.0.0.1');
    expect(addresses.of(request({ 'x-forwarded-for': '198.51.100.7' })).ip).toBe('198.51.100.7');
    expect(addresses.of(request({ 'x-forwarded-for': '198.51.100.8' })).key).toBe('ip:198.51.100.8');
    expect(addresses.of(request()).ip).toBe('10.0.0.1');
  });

  it('shares one unknown bucket when there is no socket address (an app called without a listener)', () => {
    const { peer, addresses, request } = lookup();
    peer.address = undefined;
    expect(addresses.of(request())).toEqual({ ip: undefined, key: 'ip:unknown' });
  });

  it('stays correct past the size of its memo of socket addresses', () => {
    const { peer, addresses, request } = lookup();
    for (let i = 0; i < 3000; i++) {
      peer.address = `198.51.${i >> 8}.${i & 255}`;
      expect(addresses.of(request()).ip).toBe(peer.address);
    }
  });
});
