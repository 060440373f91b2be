/** The request target found by position in the absolute URL Bun gives every request. */
import { describe, expect, it } from 'bun:test';
import { pathAndQuery, pathStart } from '../../src/lib/request-target.ts';

describe('request target', () => {
  // The URL, where its path starts (-1: none), and the path and query.
  const table: [string, number, string][] = [
    ['http://127.0.0.1:3000/api/v1/users/me', 21, '/api/v1/users/me'],
    ['http://x/api/v1/users/me?token=abc&x=/y', 8, '/api/v1/users/me?token=abc&x=/y'],
    ['https://myapp.expose.test/', 25, '/'],
    ['http://[::1]:3000//double//slash', 17, '//double//slash'],
    ['http://host-without-path', -1, '/'],
  ];
  for (const [url, start, target] of table) {
    it(`finds ${JSON.stringify(target)} at ${start} in ${url}`, () => {
      expect(pathStart(url)).toBe(start);
      expect(pathAndQuery(url)).toBe(target);
    });
  }
});
