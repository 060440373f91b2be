/**
 * The compiled binary with TLS on, as an operator runs it: alone in an empty directory, ACME pointed at
 * Pebble, no proxy; it obtains its certificates and serves the API and a tunnel (the compiled `expose`
 * client over wss://) over HTTPS. And with certificate files: SIGHUP and a change of the files swap the
 * certificate without a restart, and a broken pair leaves the old one serving.
 *
 * Printed, never asserted: the time from starting the process to its first HTTPS answer.
 */
import { afterAll, afterEach, beforeAll, expect, it } from 'bun:test';
import type { Server } from 'bun';
import { readFileSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import { BINARY_TEST_PASSWORD, ServerProcess, buildBinary, cleanEnv, installBinary, removeTempDirs, tempDir } from '../helpers/binary.ts';
import { freePort } from '../helpers/free-port.ts';
import { describeWithPebble, startPebble } from '../helpers/pebble.ts';
import { fakeHttpAdapter } from './fake-dns-apis.ts';
import { FakeZone, selfSigned } from './helpers.ts';
import { API_HOST, TUNNEL_DOMAIN, until } from './tls-server.ts';
import { Lines } from '../client/process.ts';

const BUILD_TIMEOUT_MS = 120_000;
const TEST_TIMEOUT_MS = 90_000;
const describePebble = await describeWithPebble('the TLS binary tests');

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
afterAll(removeTempDirs);

let binary: string;
let dir: string;
beforeAll(async () => {
  ({ binary, dir } = await installBinary());
}, BUILD_TIMEOUT_MS);

/** GET over HTTPS trusting `ca`; resolves with the status, body and served certificate's serial, or throws. */
async function httpsGet(url: string, ca: string, init: RequestInit = {}): Promise<{ status: number; body: string; serial: string }> {
  let serial = '';
  const response = await fetch(url, {
    keepalive: false,
    ...init,
    tls: { ca, checkServerIdentity: (host: string, cert: PeerCertificate) => ((serial = cert.serialNumber), checkServerIdentity(host, cert)) },
  });
  return { status: response.status, body: await response.text(), serial };
}

/** POSTs JSON over HTTPS. */
async function httpsJson(url: string, ca: string, body: unknown, credential?: string): Promise<Record<string, unknown>> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(credential ? { authorization: `Bearer ${credential}` } : {}) },
    body: JSON.stringify(body),
    tls: { ca },
  });
  if (response.status !== 201) throw new Error(`${url}: ${response.status} ${await response.text()}`);
  return (await response.json()) as Record<string, unknown>;
}

describePebble('dist/expose-server with TLS', () => {
  it('from an empty directory, obtains its certificates from Pebble and serves the API and a tunnel over HTTPS', async () => {
    const [httpPort, httpsPort] = [await freePort(), await freePort()];
    const pebble = await startPebble({ httpPort });
    cleanups.push(() => pebble.stop());
    const adapter = fakeHttpAdapter(new FakeZone(pebble), 'binary-dns-token');
    cleanups.push(() => adapter.stop(true));
    const origin: Server<undefined> = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: (request) => new Response(`local service: ${new URL(request.url).pathname} over ${request.headers.get('x-forwarded-proto')}`) });
    cleanups.push(() => origin.stop(true));
    const root = pebble.issuingRootPem();

    const startedMs = performance.now();
    const server = await ServerProcess.start(binary, {
      cwd: dir,
      env: {
        EXPOSE_TLS: 'acme',
        EXPOSE_HTTPS_PORT: String(httpsPort),
        EXPOSE_HTTP_PORT: String(httpPort),
        EXPOSE_API_HOST: API_HOST,
        EXPOSE_TUNNEL_DOMAIN: TUNNEL_DOMAIN,
        EXPOSE_ACME_DIRECTORY: pebble.directoryUrl,
        EXPOSE_ACME_CA_FILE: pebble.listenerCaFile,
        EXPOSE_DNS_PROVIDER: 'http',
        EXPOSE_DNS_HTTP_URL: `http://127.0.0.1:${adapter.port}`,
        EXPOSE_DNS_HTTP_TOKEN: 'binary-dns-token',
      },
    });
    cleanups.push(() => server.kill());
    expect(server.port).toBe(httpsPort);
    const api = `https://${API_HOST}:${httpsPort}`;
    await until(async () => (await httpsGet(`${api}/health`, root).catch(() => undefined))?.status === 200, 'the first HTTPS answer');
    const firstAnswerMs = performance.now() - startedMs;
    console.log(`[tls] compiled binary, ACME against Pebble: process start to first HTTPS answer ${Math.round(firstAnswerMs)} ms`);
    await server.waitForLog((line) => (line.msg === 'https certificates swapped' || line.msg === 'https listening') && (line.names as string[]).includes(`*.${TUNNEL_DOMAIN}`), 30_000);

    const { token } = (await httpsJson(`${api}/api/v1/auth/register`, root, { email: 'ops@example.com', password: BINARY_TEST_PASSWORD })) as { token: string };
    const { key } = (await httpsJson(`${api}/api/v1/api-keys`, root, { name: 'binary' }, token)) as { key: string };

    // The compiled client, built beside the server, trusting Pebble's root from a file.
    const caFile = join(tempDir('expose-ca-'), 'root.pem');
    writeFileSync(caFile, root);
    const expose = Bun.spawn([join(dirname(await buildBinary()), 'expose'), 'http', String(origin.port), '--subdomain', 'binary', '--json', '--server', api, '--ca-file', caFile], {
      env: cleanEnv({ EXPOSE_API_KEY: key, XDG_CONFIG_HOME: tempDir('expose-config-') }),
      stdin: 'ignore',
      stdout: 'pipe',
      stderr: 'pipe',
    });
    cleanups.push(() => expose.kill('SIGKILL'));
    const ready = await new Lines(expose.stdout as ReadableStream<Uint8Array>).event('ready');
    expect(ready.public_url).toBe(`https://binary.${TUNNEL_DOMAIN}:${httpsPort}`);
    const visit = await httpsGet(`https://binary.${TUNNEL_DOMAIN}:${httpsPort}/from-the-binary`, root);
    expect(visit).toMatchObject({ status: 200, body: 'local service: /from-the-binary over https' });
    const redirect = await fetch(`http://${API_HOST}:${httpPort}/health`, { redirect: 'manual' });
    expect([redirect.status, redirect.headers.get('location')]).toEqual([301, `${api}/health`]);

    expose.kill('SIGINT');
    expect(await expose.exited).toBe(0);
    expect(await server.stop()).toBe(0);
    const log = server.logs.map((line) => JSON.stringify(line)).join('\n');
    expect(log).not.toContain('BEGIN');
    expect(log).not.toContain('binary-dns-token');
  }, TEST_TIMEOUT_MS);

  it('with certificate files, swaps the certificate on SIGHUP and on a change of the files, and keeps it when the new pair is broken', async () => {
    // As certbot lays them out: the configured paths are symlinks in `live/` (the folder the server
    // watches) to the real files in `archive/` (not watched). Writing the real files changes nothing
    // the watch sees, so only a SIGHUP reloads them; swapping the symlinks is what the watch sees.
    const live = tempDir('expose-certs-live-');
    const archive = tempDir('expose-certs-archive-');
    const certFile = join(live, 'fullchain.pem');
    const keyFile = join(live, 'privkey.pem');
    const names = [API_HOST, `*.${TUNNEL_DOMAIN}`];
    /** Writes `material` as archive version `version` (the real files). */
    const archived = (version: number, material: { certPem: string; keyPem: string }) => {
      const files = { cert: join(archive, `fullchain${version}.pem`), key: join(archive, `privkey${version}.pem`) };
      writeFileSync(files.key, material.keyPem);
      writeFileSync(files.cert, material.certPem);
      return files;
    };
    /** Points the live symlinks at `files`, each replaced in one rename. */
    const link = (files: { cert: string; key: string }) => {
      for (const [path, target] of [[keyFile, files.key], [certFile, files.cert]] as const) {
        symlinkSync(target, `${path}.new`);
        renameSync(`${path}.new`, path);
      }
    };
    const [first, second, third] = await Promise.all([selfSigned(names), selfSigned(names), selfSigned(names)]);
    link(archived(1, first));
    const [httpPort, httpsPort] = [await freePort(), await freePort()];
    const server = await ServerProcess.start(binary, {
      cwd: tempDir('expose-files-run-'),
      env: { EXPOSE_TLS: 'files', EXPOSE_TLS_CERT_FILE: certFile, EXPOSE_TLS_KEY_FILE: keyFile, EXPOSE_HTTPS_PORT: String(httpsPort), EXPOSE_HTTP_PORT: String(httpPort), EXPOSE_TUNNEL_DOMAIN: TUNNEL_DOMAIN, EXPOSE_API_HOST: API_HOST },
    });
    cleanups.push(() => server.kill());
    const health = `https://${API_HOST}:${httpsPort}/health`;
    expect((await httpsGet(health, first.certPem)).status).toBe(200);

    // New contents behind the same symlinks: unseen by the watch, reloaded by the SIGHUP alone.
    archived(1, second);
    server.proc.kill('SIGHUP');
    expect(await server.waitForLog((line) => line.msg === 'tls certificate reloaded')).toMatchObject({ reason: 'SIGHUP' });
    expect((await httpsGet(health, second.certPem)).status).toBe(200);
    await expect(httpsGet(health, first.certPem)).rejects.toThrow();

    // No signal: the folder watch notices the symlinks swapped to new files (certbot's renewal).
    link(archived(2, third));
    await server.waitForLog((line) => line.msg === 'tls certificate reloaded' && line.reason === 'file changed');
    expect((await httpsGet(health, third.certPem)).status).toBe(200);

    // A key that is not the certificate's (written through the symlink, so only the SIGHUP reloads):
    // logged, and the certificate in service stays.
    writeFileSync(keyFile, first.keyPem);
    server.proc.kill('SIGHUP');
    const refused = await server.waitForLog((line) => line.msg === 'tls certificate files could not be reloaded; the previous certificate still serves');
    expect(refused).toMatchObject({ reason: 'SIGHUP' });
    expect(String(refused.error)).toContain('is not the key of the certificate');
    expect((await httpsGet(health, third.certPem)).status).toBe(200);
    expect(readFileSync(keyFile, 'utf8')).toBe(first.keyPem);
    expect(await server.stop()).toBe(0);
    expect(server.logs.map((line) => JSON.stringify(line)).join('\n')).not.toContain('BEGIN');
  }, TEST_TIMEOUT_MS);

  it('refuses to start on a certificate file it cannot use, with one line naming the setting', async () => {
    const certDir = tempDir('expose-bad-certs-');
    const material = await selfSigned([API_HOST]);
    const other = await selfSigned([API_HOST]);
    writeFileSync(join(certDir, 'cert.pem'), material.certPem);
    writeFileSync(join(certDir, 'key.pem'), other.keyPem);
    const proc = Bun.spawn([binary, '--tls', 'files', '--tls-cert-file', join(certDir, 'cert.pem'), '--tls-key-file', join(certDir, 'key.pem'), '--https-port', '0', '--http-port', '0', '--host', '127.0.0.1'], {
      cwd: tempDir('expose-bad-run-'),
      env: cleanEnv(),
      stdout: 'pipe',
      stderr: 'pipe',
    });
    const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
    expect(code).toBe(1);
    expect(stderr.trim().split('\n')).toEqual([`expose-server: EXPOSE_TLS_KEY_FILE: ${join(certDir, 'key.pem')} is not the key of the certificate in ${join(certDir, 'cert.pem')}`]);
  }, TEST_TIMEOUT_MS);
});
