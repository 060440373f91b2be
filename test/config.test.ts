/** loadConfig: defaults, environment, flags, and one clear line for every bad value. */
import { describe, expect, it } from 'bun:test';
import { ConfigError, loadConfig, settingsHelp, SETTINGS } from '../src/config.ts';

describe('loadConfig', () => {
  it('has the contract defaults', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      host: '0.0.0.0', port: 3000, dbPath: './expose.db', jwtSecret: undefined, registration: 'open',
      passwordMinLength: 8, maxApiKeys: 100, rateLimitAuth: 10, rateLimitApi: 100, logLevel: 'info',
    });
    expect(c.trustedProxies).toEqual([]);
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('reads every variable, PORT as a fallback, and lets flags win', () => {
    const env = {
      EXPOSE_HOST: '127.0.0.1', PORT: '8080', EXPOSE_DB: ':memory:', EXPOSE_JWT_SECRET: 's'.repeat(32),
      EXPOSE_REGISTRATION: 'closed', EXPOSE_PASSWORD_MIN_LENGTH: '12', EXPOSE_MAX_API_KEYS: '5',
      EXPOSE_RATE_LIMIT_AUTH: '0', EXPOSE_RATE_LIMIT_API: '50', EXPOSE_TRUSTED_PROXIES: '10.0.0.0/8, ::1', EXPOSE_LOG_LEVEL: 'debug',
    };
    const c = loadConfig(env);
    expect(c).toMatchObject({ host: '127.0.0.1', port: 8080, dbPath: ':memory:', registration: 'closed', passwordMinLength: 12, maxApiKeys: 5, rateLimitAuth: 0, rateLimitApi: 50, logLevel: 'debug' });
    expect(c.trustedProxies.length).toBe(2);
    expect(loadConfig({ ...env, EXPOSE_PORT: '9000' }).port).toBe(9000);
    expect(loadConfig(env, ['--port', '7000', '--registration=open']).port).toBe(7000);
    expect(loadConfig(env, ['--registration=open']).registration).toBe('open');
  });

  it.each([
    ['EXPOSE_HOST: "999.1.1.1" is not an IP address or host name', { EXPOSE_HOST: '999.1.1.1' }, []],
    ['EXPOSE_HOST: "10.0.0" is not', { EXPOSE_HOST: '10.0.0' }, []],
    ['EXPOSE_HOST: "300.1.1.1" is not', { EXPOSE_HOST: '300.1.1.1' }, []],
    ['EXPOSE_HOST: "::g" is not', { EXPOSE_HOST: '::g' }, []],
    ['EXPOSE_HOST: "my host" is not', { EXPOSE_HOST: 'my host' }, []],
    ['EXPOSE_HOST: "http://example.com" is not', { EXPOSE_HOST: 'http://example.com' }, []],
    ['EXPOSE_HOST: "-bad.example.com" is not', { EXPOSE_HOST: '-bad.example.com' }, []],
    ['--host: "a..b" is not', {}, ['--host', 'a..b']],
    ['EXPOSE_PORT', { EXPOSE_PORT: 'abc' }, []],
    ['EXPOSE_PORT', { EXPOSE_PORT: '70000' }, []],
    ['PORT', { PORT: '-1' }, []],
    ['EXPOSE_JWT_SECRET: must be at least 32 bytes', { EXPOSE_JWT_SECRET: 'too-short' }, []],
    ['EXPOSE_REGISTRATION', { EXPOSE_REGISTRATION: 'maybe' }, []],
    ['EXPOSE_PASSWORD_MIN_LENGTH: must be between 8', { EXPOSE_PASSWORD_MIN_LENGTH: '6' }, []],
    ['EXPOSE_MAX_API_KEYS', { EXPOSE_MAX_API_KEYS: '0' }, []],
    ['EXPOSE_RATE_LIMIT_AUTH', { EXPOSE_RATE_LIMIT_AUTH: '1.5' }, []],
    ['EXPOSE_RATE_LIMIT_API', { EXPOSE_RATE_LIMIT_API: '' }, []],
    ['EXPOSE_TRUSTED_PROXIES', { EXPOSE_TRUSTED_PROXIES: '10.0.0.0/33' }, []],
    ['EXPOSE_LOG_LEVEL', { EXPOSE_LOG_LEVEL: 'loud' }, []],
    ['--port', {}, ['--port', 'x']],
    ['unknown option "--nope"', {}, ['--nope']],
    ['--db: needs a value', {}, ['--db']],
  ])('refuses a bad value with one line: %s', (expected, env, argv) => {
    let error: unknown;
    try {
      loadConfig(env as Record<string, string>, argv as string[]);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toContain(expected);
    expect((error as Error).message).not.toContain('\n');
  });

  it.each([
    ['127.0.0.1', '127.0.0.1'],
    ['0.0.0.0', '0.0.0.0'],
    ['::', '::'],
    ['[::1]', '::1'],
    ['fe80::1%eth0', 'fe80::1%eth0'],
    [' localhost ', 'localhost'],
    ['api.example.com', 'api.example.com'],
    ['my-host', 'my-host'],
  ])('accepts the listen address %p as %p', (raw, host) => {
    expect(loadConfig({ EXPOSE_HOST: raw }).host).toBe(host);
  });

  it('never echoes a rejected secret', () => {
    expect(() => loadConfig({ EXPOSE_JWT_SECRET: 'hunter2-short' })).toThrow(/^(?!.*hunter2).*$/);
  });
});

describe('settingsHelp', () => {
  it('lists every setting with its flag, variable and default', () => {
    const help = settingsHelp();
    for (const s of SETTINGS) {
      expect(help).toContain(s.flag);
      expect(help).toContain(s.env);
      expect(help).toContain(`default ${s.defaultText}`);
    }
  });
});
