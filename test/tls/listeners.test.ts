/**
 * The pieces of the TLS listeners without a CA: the plain port's redirect, one swap for a burst of
 * certificate changes, a failed swap that leaves the previous generation serving, a port in use that
 * fails loudly, certificate files read, refused and reloaded, and the healthcheck while ACME waits.
 */
import { afterAll, describe, expect, it } from 'bun:test';
import type { Server } from 'bun';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createMemoryLogger } from '../../src/lib/logger.ts';
import type { CertificateMaterial } from '../../src/tls/certificate.ts';
import { fileCertificates } from '../../src/tls/file-source.ts';
import { httpsOrigin, redirectToHttps } from '../../src/tls/http-redirect.ts';
import { HttpsListener, probePort, type GenerationOptions } from '../../src/tls/https-listener.ts';
import { tlsEntries } from '../../src/tls/sni.ts';
import { TlsSetupError } from '../../src/tls/source.ts';
import { parseCommandLine } from '../../src/client/args.ts';
import { resolveCredentials, trustedCertificates } from '../../src/client/settings.ts';
import { UsageError } from '../../src/client/errors.ts';
import { selfSigned } from './helpers.ts';
import { pemDir, startTlsServer } from './tls-server.ts';
import { healthcheck } from '../../src/cli/healthcheck.ts';
import { loadConfig } from '../../src/config.ts';
import { freePort } from '../helpers/free-port.ts';

const pems = pemDir();
afterAll(() => pems.remove());

describe('redirectToHttps', () => {
  const redirect = (url: string, init: RequestInit & { host?: string | null } = {}, httpsPort = 443, fallback?: string) => {
    const request = new Request(url, init);
    if (init.host === null) request.headers.delete('host');
    else if (init.host !== undefined) request.headers.set('host', init.host);
    const response = redirectToHttps(request, httpsPort, fallback);
    return [response.status, response.headers.get('location')];
  };

  it('sends GET and HEAD on with 301 and everything else with 308, to the same host, path and query', () => {
    expect(redirect('http://api.example.com/docs?x=1&y', { host: 'API.example.com.' })).toEqual([301, 'https://api.example.com/docs?x=1&y']);
    expect(redirect('http://a.example.com/', { method: 'HEAD', host: 'a.example.com:80' })).toEqual([301, 'https://a.example.com/']);
    expect(redirect('http://a.example.com/upload', { method: 'POST', body: 'x', host: 'a.example.com' })).toEqual([308, 'https://a.example.com/upload']);
    expect(redirect('http://a.example.com/x', { host: 'a.example.com:8080' }, 8443)).toEqual([301, 'https://a.example.com:8443/x']);
  });

  it('never redirects to a host it cannot vouch for: none given goes to the API host, a strange one gets 400', () => {
    expect(redirect('http://10.0.0.1/x', { host: null }, 443, 'api.example.com')).toEqual([301, 'https://api.example.com/x']);
    expect(redirect('http://10.0.0.1/x', { host: null })).toEqual([400, null]);
    expect(redirect('http://10.0.0.1/x', { host: 'evil.example@other' })).toEqual([400, null]);
    expect(redirect('http://10.0.0.1/x', { host: '[::1]:80' })).toEqual([400, null]);
  });
});

describe('httpsOrigin', () => {
  it('names the port only when it is not 443: redirects, public_url and the API URL alike', () => {
    expect(httpsOrigin('{subdomain}.{domain}', 443)).toBe('https://{subdomain}.{domain}');
    expect(httpsOrigin('api.example.com', 443)).toBe('https://api.example.com');
    expect(httpsOrigin('api.example.com', 8443)).toBe('https://api.example.com:8443');
  });
});

describe('HttpsListener', () => {
  const logger = createMemoryLogger();
  const serveOptions: GenerationOptions<undefined> = {
    development: false,
    maxRequestBodySize: 1024,
    fetch: () => new Response('ok'),
    websocket: { message() {} },
  };

  it('swaps once for a burst of changes, refuses a key of another certificate while the old one serves, and stops every generation', async () => {
    const [a, b] = await Promise.all([selfSigned(['a.test']), selfSigned(['b.test'])]);
    let certificates = new Map<string, CertificateMaterial>();
    const port = probePort('127.0.0.1', 0);
    const listener = new HttpsListener({ hostname: '127.0.0.1', port, serveOptions, entries: () => tlsEntries(certificates, 'a'), logger });
    expect(listener.swap()).toBe(false);
    expect(listener.server).toBeUndefined();

    certificates = new Map([['a', a]]);
    listener.update();
    certificates = new Map([['a', a], ['b', b]]);
    listener.update();
    listener.update();
    await Promise.resolve();
    expect(listener.generation).toBe(1);
    const get = (name: string, ca: string) => fetch(`https://127.0.0.1:${port}/`, { keepalive: false, tls: { ca, serverName: name } }).then((r) => r.text());
    expect(await get('a.test', a.certPem)).toBe('ok');
    expect(await get('b.test', b.certPem)).toBe('ok');

    certificates = new Map([['a', { ...a, keyPem: b.keyPem }]]);
    expect(listener.swap()).toBe(false);
    expect(logger.lines.at(-1)).toContain('https listener could not start with the new certificates; the previous ones still serve');
    expect(await get('b.test', b.certPem)).toBe('ok');

    certificates = new Map([['b', b]]);
    expect(listener.swap()).toBe(true);
    expect(listener.generation).toBe(2);
    await listener.stop(true);
    expect(listener.swap()).toBe(false);
    await expect(get('b.test', b.certPem)).rejects.toThrow();
  });

  it('makes a port already in use fail loudly, though its generations share theirs', () => {
    const taken: Server<undefined> = Bun.serve({ hostname: '127.0.0.1', port: 0, reusePort: true, fetch: () => new Response('other') });
    try {
      expect(() => probePort('127.0.0.1', taken.port!)).toThrow();
    } finally {
      taken.stop(true);
    }
  });
});

describe('certificate files', () => {
  it('refuses an unreadable file, a file without a certificate and a key of another certificate, naming the setting', async () => {
    const [one, two] = await Promise.all([selfSigned(['api.example.com']), selfSigned(['api.example.com'])]);
    const cert = pems.write('cert.pem', one.certPem);
    const options = { expectedNames: [], logger: createMemoryLogger(), onChange() {} };
    const open = (certFile: string, keyFile: string) => () => fileCertificates({ ...options, certFile, keyFile });
    expect(open(join(pems.write('x', ''), '..', 'missing.pem'), cert)).toThrow(/^EXPOSE_TLS_CERT_FILE: cannot read .*missing\.pem: ENOENT$/);
    expect(open(pems.write('empty.pem', 'not a certificate'), pems.write('k1.pem', one.keyPem))).toThrow('EXPOSE_TLS_CERT_FILE: ');
    expect(open(cert, pems.write('k2.pem', two.keyPem))).toThrow(TlsSetupError);
    expect(open(cert, pems.write('k3.pem', two.keyPem))).toThrow('is not the key of the certificate');
  });

  it('reloads a new pair, ignores an unchanged one, keeps the old on a broken one, and warns about uncovered hosts', async () => {
    const [one, two] = await Promise.all([selfSigned(['api.example.com']), selfSigned(['api.example.com', '*.expose.example.com'])]);
    const certFile = pems.write('reload-cert.pem', one.certPem);
    const keyFile = pems.write('reload-key.pem', one.keyPem);
    const logger = createMemoryLogger();
    let changes = 0;
    const source = fileCertificates({ certFile, keyFile, expectedNames: ['api.example.com', 'x.expose.example.com'], logger, onChange: () => changes++ });
    expect(logger.lines.some((l) => l.includes('does not cover every host') && l.includes('x.expose.example.com'))).toBe(true);
    expect(source.reload('SIGHUP')).toBe(false);
    writeFileSync(certFile, two.certPem);
    expect(source.reload('SIGHUP')).toBe(false);
    expect(logger.lines.at(-1)).toContain('could not be reloaded; the previous certificate still serves');
    expect(source.certificates().get('files')?.certPem).toBe(one.certPem);
    writeFileSync(keyFile, two.keyPem);
    expect(source.reload('SIGHUP')).toBe(true);
    expect(changes).toBe(1);
    expect(source.certificates().get('files')?.names).toEqual(['api.example.com', '*.expose.example.com']);
    expect(logger.lines.join('')).not.toContain('BEGIN');
  });
});

describe('expose --ca-file', () => {
  it('is read by login and http, from the flag, EXPOSE_CA_FILE, or the login saved for the same server', () => {
    expect(parseCommandLine(['http', '3000', '--ca-file', 'ca.pem'])).toMatchObject({ name: 'http', caFile: 'ca.pem' });
    expect(parseCommandLine(['login', '--ca-file=/etc/ca.pem'])).toMatchObject({ name: 'login', caFile: '/etc/ca.pem' });
    const saved = { server: 'https://expose.example.com', api_key: 'exp_k1_x', ca_file: '/etc/saved-ca.pem' };
    expect(resolveCredentials({}, {}, saved).caFile).toBe('/etc/saved-ca.pem');
    expect(resolveCredentials({}, { EXPOSE_CA_FILE: '/etc/env-ca.pem' }, saved).caFile).toBe('/etc/env-ca.pem');
    expect(resolveCredentials({ caFile: '/etc/flag-ca.pem' }, { EXPOSE_CA_FILE: '/etc/env-ca.pem' }, saved).caFile).toBe('/etc/flag-ca.pem');
    expect(resolveCredentials({ server: 'https://other.example' }, {}, saved).caFile).toBeUndefined();
    expect(resolveCredentials({ caFile: 'relative.pem' }, {}, undefined).caFile).toBe(join(process.cwd(), 'relative.pem'));
  });

  it('adds the file to the system roots, and refuses a file it cannot use', () => {
    const trusted = trustedCertificates(pems.write('ca.pem', '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n'));
    expect(trusted!.length).toBeGreaterThan(100);
    expect(trusted!.at(-1)).toContain('MIIB');
    expect(trustedCertificates(undefined)).toBeUndefined();
    expect(() => trustedCertificates('/nonexistent/ca.pem')).toThrow(UsageError);
    expect(() => trustedCertificates(pems.write('junk.pem', 'junk'))).toThrow('holds no PEM certificate');
  });
});

describe('expose-server healthcheck with ACME', () => {
  it('counts the process alive while its first certificate is awaited, and fails when nothing listens', async () => {
    const httpPort = String(await freePort());
    // A CA that never answers: the HTTPS listener waits for a certificate that does not come.
    const env = { EXPOSE_HTTP_PORT: httpPort, EXPOSE_ACME_DIRECTORY: `https://127.0.0.1:${await freePort()}/directory` };
    const server = await startTlsServer(env);
    const config = loadConfig({ EXPOSE_HOST: '127.0.0.1', EXPOSE_TLS: 'acme', EXPOSE_API_HOST: 'api.localhost', EXPOSE_TUNNEL_DOMAIN: 'expose.localhost', EXPOSE_HTTPS_PORT: String(server.port), ...env });
    try {
      expect(server.running.https.server).toBeUndefined();
      expect(await healthcheck(config)).toBe(`http://127.0.0.1:${httpPort}/health: alive, waiting for its first certificate (https://127.0.0.1:${server.port}/health is not listening yet)`);
      // With certificate files HTTPS listens from the start: a refusal there is never excused.
      await expect(healthcheck({ ...config, tlsMode: 'files' })).rejects.toThrow(`https://127.0.0.1:${server.port}/health: ECONNREFUSED`);
    } finally {
      await server.stop();
    }
    await expect(healthcheck(config)).rejects.toThrow(`https://127.0.0.1:${server.port}/health: ECONNREFUSED`);
  });
});
