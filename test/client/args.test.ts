/** The command line: targets, flags and their errors. */
import { describe, expect, it } from 'bun:test';
import { parseCommandLine } from '../../src/client/args.ts';
import { UsageError } from '../../src/client/errors.ts';
import { parseTarget } from '../../src/client/target.ts';

describe('parseTarget', () => {
  it.each([
    ['3000', { origin: 'http://localhost:3000', host: 'localhost:3000', port: 3000 }],
    ['127.0.0.1:8080', { origin: 'http://127.0.0.1:8080', host: '127.0.0.1:8080', port: 8080 }],
    ['[::1]:5173', { origin: 'http://[::1]:5173', host: '[::1]:5173', port: 5173 }],
    ['myhost.lan:80', { origin: 'http://myhost.lan:80', host: 'myhost.lan:80', port: 80 }],
    ['http://localhost:5173', { origin: 'http://localhost:5173', host: 'localhost:5173', port: 5173 }],
    ['https://dev.local/', { origin: 'https://dev.local', host: 'dev.local', port: 443 }],
    ['http://dev.local', { origin: 'http://dev.local', host: 'dev.local', port: 80 }],
  ])('reads %s', (input, expected) => {
    expect(parseTarget(input)).toEqual(expected);
  });

  it.each(['0', '65536', 'abc', 'localhost', 'host:', 'host:port', 'ftp://x:21', 'http://x:1/path', 'http://x:1/?q', 'http://u:p@x:1', ':3000'])('refuses %s', (input) => {
    expect(() => parseTarget(input)).toThrow(UsageError);
  });

  it('does not quote what it refuses: a key pasted in the wrong place stays off the screen', () => {
    for (const input of ['exp_k1_pastedsecret', 'exp_k1_pastedsecret:1', 'http://x:1/exp_k1_pastedsecret']) {
      expect(() => parseTarget(input)).toThrow(UsageError);
      try {
        parseTarget(input);
      } catch (error) {
        expect((error as Error).message).not.toContain('pastedsecret');
      }
    }
  });
});

describe('parseCommandLine', () => {
  it('reads http with every option', () => {
    expect(parseCommandLine(['http', '3000', '--subdomain', 'MyApp', '--host-header', 'preserve', '--json', '--server', 'https://x.example', '--key', 'k'])).toEqual({
      name: 'http',
      target: { origin: 'http://localhost:3000', host: 'localhost:3000', port: 3000 },
      server: 'https://x.example',
      key: 'k',
      subdomain: 'myapp',
      hostHeader: 'preserve',
      json: true,
    });
  });

  it('reads login, help and version', () => {
    expect(parseCommandLine(['login', '--server=https://x.example'])).toEqual({ name: 'login', server: 'https://x.example' });
    expect(parseCommandLine(['--help'])).toEqual({ name: 'help' });
    expect(parseCommandLine(['http', '-h'])).toEqual({ name: 'help' });
    expect(parseCommandLine(['-v'])).toEqual({ name: 'version' });
  });

  it.each([
    [['login', 'extra']],
    [['login', '--key', 'k']],
    [['http', '1', '2']],
    [['http', '3000', '--subdomain', 'ab']],
    [['http', '3000', '--subdomain', 'api-']],
    [['http', '3000', '--json=yes']],
    [['http', '3000', '--server']],
  ])('refuses %j', (argv) => {
    expect(() => parseCommandLine(argv)).toThrow(UsageError);
  });
});
