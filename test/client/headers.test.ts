/** Header rules: what reaches the local service, and what goes back to the visitor. */
import { describe, expect, it } from 'bun:test';
import { localRequestHeaders, responseHeaderPairs } from '../../src/client/headers.ts';
import { isHopByHopHeader as isHopByHop } from '../../src/tunnel/protocol.ts';

describe('localRequestHeaders', () => {
  const visitor: [string, string][] = [
    ['Host', 'myapp.expose.test'],
    ['Connection', 'keep-alive, X-Secret-Hop'],
    ['X-Secret-Hop', 'drop me'],
    ['Keep-Alive', 'timeout=5'],
    ['TE', 'trailers'],
    ['Proxy-Authorization', 'Basic abc'],
    ['Expect', '100-continue'],
    ['Cookie', 'a=1'],
    ['Cookie', 'b=2'],
    ['Accept', 'text/html'],
    ['X-Forwarded-For', '203.0.113.9'],
  ];

  it('drops hop-by-hop headers, and those Connection names, and rewrites Host', () => {
    const headers = localRequestHeaders(visitor, 'localhost:3000', 'rewrite');
    expect([...headers]).toEqual([
      ['accept', 'text/html'],
      ['cookie', 'a=1; b=2'],
      ['host', 'localhost:3000'],
      ['x-forwarded-for', '203.0.113.9'],
    ]);
  });

  it('keeps the visitor Host when preserving', () => {
    expect(localRequestHeaders(visitor, 'localhost:3000', 'preserve').get('host')).toBe('myapp.expose.test');
  });
});

describe('responseHeaderPairs', () => {
  it('keeps every Set-Cookie apart and drops hop-by-hop headers', () => {
    const headers = new Headers([
      ['Content-Type', 'text/plain'],
      ['Set-Cookie', 'a=1; Expires=Wed, 21 Oct 2037 07:28:00 GMT'],
      ['Set-Cookie', 'b=2'],
      ['Connection', 'close'],
      ['Transfer-Encoding', 'chunked'],
      ['Proxy-Authenticate', 'Basic'],
    ]);
    expect(responseHeaderPairs(headers)).toEqual([
      ['content-type', 'text/plain'],
      ['set-cookie', 'a=1; Expires=Wed, 21 Oct 2037 07:28:00 GMT'],
      ['set-cookie', 'b=2'],
    ]);
  });

  it('knows the hop-by-hop list', () => {
    for (const name of ['Connection', 'keep-alive', 'Transfer-Encoding', 'TE', 'Trailer', 'Upgrade', 'Proxy-Connection']) expect(isHopByHop(name)).toBe(true);
    for (const name of ['Content-Length', 'Set-Cookie', 'Host']) expect(isHopByHop(name)).toBe(false);
  });
});
