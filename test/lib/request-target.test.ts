/** The request target found by position in the absolute URL Bun gives every request. */
import { describe, expect, it } from 'bun:test';
import { pathAndQuery, pathStart } from '../../src/lib/request-target.ts';

describe('request target', () => {
  const table: [string, string][] = [
    ['http://127.0.0.1:3000/api/v1/users/me', '/api/v1/users/me'],
    ['http://x/api/v1/users/me?token=abc&x=/y', '/api/v1/users/me?token=abc&x=/y'],
    ['https://myapp.expose.test/', '/'],
    ['http://[::1]:3000//double//slash', '//double//slash'],
    ['http://host-without-path', '/'],
  ];
  for (const [url, target] of table) {
    it(`finds ${JSON.stringify(target)} in ${url}`, () => {
      expect(pathAndQuery(url)).toBe(target);
      expect(pathStart(url) === -1 ? '/' : url.slice(pathStart(url))).toBe(target);
    });
  }
});
