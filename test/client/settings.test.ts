/** Settings: flags over environment over the saved login, and the config file's place. */
import { describe, expect, it } from 'bun:test';
import { configPath } from '../../src/client/config-file.ts';
import { UsageError } from '../../src/client/errors.ts';
import { normaliseServerUrl, resolveCredentials, testIntervalsFromEnv } from '../../src/client/settings.ts';

const saved = { server: 'https://expose.example.com/', api_key: 'saved-key' };

describe('resolveCredentials', () => {
  it('prefers the flag, then the environment, then the saved login, then the default', () => {
    expect(resolveCredentials({ server: 'https://a.example', key: 'flag-key' }, { EXPOSE_SERVER: 'https://b.example', EXPOSE_API_KEY: 'env-key' }, saved)).toEqual({
      server: 'https://a.example',
      apiKey: 'flag-key',
      keySource: 'flag',
    });
    expect(resolveCredentials({}, { EXPOSE_SERVER: 'https://b.example', EXPOSE_API_KEY: 'env-key' }, saved)).toEqual({
      server: 'https://b.example',
      apiKey: 'env-key',
      keySource: 'environment',
    });
    expect(resolveCredentials({}, {}, saved)).toEqual({ server: 'https://expose.example.com', apiKey: 'saved-key', keySource: 'config' });
    expect(resolveCredentials({}, {}, undefined)).toEqual({ server: 'http://localhost:3000', apiKey: undefined, keySource: undefined });
  });

  it('uses the saved key only for the server it was saved for', () => {
    expect(resolveCredentials({ server: 'https://expose.example.com' }, {}, saved).apiKey).toBe('saved-key');
    expect(resolveCredentials({ server: 'https://evil.example' }, {}, saved).apiKey).toBeUndefined();
    expect(resolveCredentials({}, { EXPOSE_SERVER: 'https://evil.example' }, saved).apiKey).toBeUndefined();
  });
});

describe('normaliseServerUrl', () => {
  it('keeps the origin and a path prefix, without trailing slashes', () => {
    expect(normaliseServerUrl('HTTPS://Expose.Example.com:443/')).toBe('https://expose.example.com');
    expect(normaliseServerUrl('http://host:8080/expose//')).toBe('http://host:8080/expose');
  });
  it.each(['expose.example.com', 'ftp://x', 'https://u:p@x', 'https://x/?q=1', 'https://x/#f'])('refuses %s', (input) => {
    expect(() => normaliseServerUrl(input)).toThrow(UsageError);
  });
});

describe('configPath', () => {
  it('follows XDG_CONFIG_HOME when absolute, else ~/.config', () => {
    expect(configPath({ XDG_CONFIG_HOME: '/x/cfg', HOME: '/home/ada' })).toBe('/x/cfg/expose/config.json');
    expect(configPath({ XDG_CONFIG_HOME: 'relative', HOME: '/home/ada' })).toBe('/home/ada/.config/expose/config.json');
    expect(configPath({ HOME: '/home/ada' })).toBe('/home/ada/.config/expose/config.json');
  });
});

describe('testIntervalsFromEnv', () => {
  it('reads positive milliseconds and refuses anything else', () => {
    expect(testIntervalsFromEnv({ EXPOSE_HEARTBEAT_MS: '20', EXPOSE_DEAD_AFTER_MS: '300' })).toEqual({ heartbeatIntervalMs: 20, deadAfterMs: 300 });
    expect(testIntervalsFromEnv({})).toEqual({ heartbeatIntervalMs: undefined, deadAfterMs: undefined });
    for (const bad of ['0', '-5', '1.5', 'soon']) expect(() => testIntervalsFromEnv({ EXPOSE_HEARTBEAT_MS: bad })).toThrow(UsageError);
  });
});
