/** The TLS settings: defaults (TLS off, as before), what each mode needs, one clear line for each mistake, no secret echoed. */
import { describe, expect, it } from 'bun:test';
import { ACME_DIRECTORIES, ConfigError, loadConfig } from '../../src/config.ts';

const ACME = { EXPOSE_TLS: 'acme', EXPOSE_API_HOST: 'api.example.com', EXPOSE_TUNNEL_DOMAIN: 'expose.example.com' };

/** The ConfigError message loadConfig throws for `env` (and `argv`). */
function refusal(env: Record<string, string>, argv: string[] = []): string {
  try {
    loadConfig(env, argv);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).not.toContain('\n');
    return (error as Error).message;
  }
  throw new Error('accepted');
}

describe('TLS settings', () => {
  it('are off by default, with the ports and directory an operator expects when turned on', () => {
    expect(loadConfig({})).toMatchObject({ tlsMode: 'off', httpsPort: 443, httpPort: 80, dnsProvider: 'none', tlsOnDemandMax: 0, acmeDirectoryUrl: ACME_DIRECTORIES.production });
    expect(loadConfig(ACME)).toMatchObject({ tlsMode: 'acme', apiHost: 'api.example.com' });
    expect(loadConfig({ ...ACME, EXPOSE_ACME_DIRECTORY: 'Staging' }).acmeDirectoryUrl).toBe(ACME_DIRECTORIES.staging);
    expect(loadConfig({ ...ACME, EXPOSE_ACME_DIRECTORY: 'https://ca.internal/acme/directory/' }).acmeDirectoryUrl).toBe('https://ca.internal/acme/directory');
    expect(loadConfig(ACME, ['--https-port', '8443', '--http-port=8080', '--api-host', 'API.Example.com.'])).toMatchObject({ httpsPort: 8443, httpPort: 8080, apiHost: 'api.example.com' });
    // Settings of a mode not chosen are ignored.
    expect(loadConfig({ EXPOSE_DNS_PROVIDER: 'cloudflare' }).tlsMode).toBe('off');
  });

  it.each([
    ['EXPOSE_TLS: must be one of off, acme, files', { EXPOSE_TLS: 'yes' }],
    ["EXPOSE_API_HOST: required when EXPOSE_TLS=acme (the API's host name", { EXPOSE_TLS: 'acme' }],
    ['EXPOSE_API_HOST: "localhost" is not a host name', { ...ACME, EXPOSE_API_HOST: 'localhost' }],
    ['EXPOSE_API_HOST: api.expose.example.com is a tunnel host', { ...ACME, EXPOSE_API_HOST: 'api.expose.example.com' }],
    // Deeper names too: the listener sends everything under the tunnel domain to the tunnels (404 there).
    ['EXPOSE_API_HOST: a.b.expose.example.com is a tunnel host', { ...ACME, EXPOSE_API_HOST: 'a.b.expose.example.com' }],
    ['EXPOSE_TLS_CERT_FILE: required when EXPOSE_TLS=files', { EXPOSE_TLS: 'files' }],
    ['EXPOSE_TLS_KEY_FILE: required when EXPOSE_TLS=files', { EXPOSE_TLS: 'files', EXPOSE_TLS_CERT_FILE: '/etc/cert.pem' }],
    ['EXPOSE_HTTP_PORT: must differ from EXPOSE_HTTPS_PORT', { ...ACME, EXPOSE_HTTPS_PORT: '8443', EXPOSE_HTTP_PORT: '8443' }],
    ['EXPOSE_HTTPS_PORT: must be between 0 and 65535', { ...ACME, EXPOSE_HTTPS_PORT: '70000' }],
    ['EXPOSE_ACME_DIRECTORY: an ACME directory is served over https', { ...ACME, EXPOSE_ACME_DIRECTORY: 'http://ca.internal/directory' }],
    ['EXPOSE_ACME_DIRECTORY: "prod" is not a URL', { ...ACME, EXPOSE_ACME_DIRECTORY: 'prod' }],
    ['EXPOSE_ACME_EMAIL: "ops" is not an email address', { ...ACME, EXPOSE_ACME_EMAIL: 'ops' }],
    ['EXPOSE_DNS_PROVIDER: must be one of none, cloudflare, acme-dns, http', { ...ACME, EXPOSE_DNS_PROVIDER: 'route53' }],
    ['EXPOSE_CLOUDFLARE_API_TOKEN: required when EXPOSE_DNS_PROVIDER=cloudflare', { ...ACME, EXPOSE_DNS_PROVIDER: 'cloudflare' }],
    ['EXPOSE_ACMEDNS_PASSWORD: required when EXPOSE_DNS_PROVIDER=acme-dns', { ...ACME, EXPOSE_DNS_PROVIDER: 'acme-dns', EXPOSE_ACMEDNS_URL: 'https://auth.acme-dns.io', EXPOSE_ACMEDNS_USERNAME: 'u', EXPOSE_ACMEDNS_SUBDOMAIN: 's' }],
    ['EXPOSE_DNS_HTTP_URL: required when EXPOSE_DNS_PROVIDER=http', { ...ACME, EXPOSE_DNS_PROVIDER: 'http' }],
    ['EXPOSE_TLS_ON_DEMAND_MAX: on-demand certificates are for servers without a DNS provider', { ...ACME, EXPOSE_DNS_PROVIDER: 'http', EXPOSE_DNS_HTTP_URL: 'http://127.0.0.1:9/dns', EXPOSE_TLS_ON_DEMAND_MAX: '5' }],
    ['EXPOSE_DNS_PROPAGATION_SECONDS: expected a whole number', { ...ACME, EXPOSE_DNS_PROPAGATION_SECONDS: 'soon' }],
  ])('refuses with one line: %s', (expected, env) => {
    expect(refusal(env)).toContain(expected);
  });

  it('names the flag when the value came from one', () => {
    expect(refusal({ EXPOSE_TLS: 'files' }, ['--tls-cert-file', '/c.pem'])).toStartWith('EXPOSE_TLS_KEY_FILE:');
    expect(refusal(ACME, ['--dns-provider', 'http'])).toStartWith('EXPOSE_DNS_HTTP_URL:');
    expect(refusal(ACME, ['--tls-on-demand-max', '3', '--dns-provider', 'http', '--dns-http-url', 'http://127.0.0.1:9'])).toStartWith('--tls-on-demand-max:');
  });

  it('never echoes a credential, not even from a URL', () => {
    const message = refusal({ ...ACME, EXPOSE_DNS_PROVIDER: 'http', EXPOSE_DNS_HTTP_URL: 'https://user:hunter2@dns.example/hook' });
    expect(message).toContain('must not hold credentials');
    expect(message).not.toContain('hunter2');
    const config = loadConfig({ ...ACME, EXPOSE_DNS_PROVIDER: 'cloudflare', EXPOSE_CLOUDFLARE_API_TOKEN: 'cf-secret-token' });
    expect(config.cloudflareApiToken).toBe('cf-secret-token');
  });
});
