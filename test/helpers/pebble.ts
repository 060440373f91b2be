/**
 * Pebble (Let's Encrypt's test CA) and pebble-challtestsrv (its fake DNS), started for one test from
 * Debian's `pebble` package: installed with apt-get when missing and the tests run as root (as CI
 * does), otherwise reported as missing so the test is skipped with the reason, as for Chromium. In CI
 * (`CI` set) a missing Pebble is an error instead: the TLS tests must not pass there by not running.
 *
 * Every name resolves to 127.0.0.1 through challtestsrv, so Pebble's HTTP-01 check of any name comes
 * to `httpPort` on this machine (the test's own challenge listener), and its DNS-01 check reads the
 * TXT records a test sets through challtestsrv's management API.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe } from 'bun:test';
import type { Subprocess } from 'bun';
import { ensureDebianPackage, run } from './apt.ts';
import { freePort } from './free-port.ts';

export const PEBBLE_PATH = '/usr/bin/pebble';
export const CHALLTESTSRV_PATH = '/usr/bin/pebble-challtestsrv';
/** How long Pebble and challtestsrv get to answer after they are started (a loaded CI machine). */
const READY_TIMEOUT_MS = 20_000;
const READY_POLL_MS = 25;
/** Validity of the certificate of Pebble's own HTTPS listener, made fresh for each run. */
const LISTENER_CERT_DAYS = 2;

/**
 * Whether Pebble can be run here, or why not. Installs Debian's `pebble` package when it can.
 * Throws instead of answering `missing` when `CI` is set.
 */
export async function ensurePebble(): Promise<{ ok: true } | { missing: string }> {
  const missing = await ensureDebianPackage('pebble', 'Pebble', () => existsSync(PEBBLE_PATH) && existsSync(CHALLTESTSRV_PATH));
  if (missing === undefined) return { ok: true };
  if (process.env.CI) throw new Error(`Pebble is required in CI (CI is set), and it is missing: ${missing}`);
  return { missing };
}

/**
 * The preamble of every test file that needs Pebble: `describe` when Pebble is there, else
 * `describe.skip` after printing why `what` is skipped. In CI a missing Pebble throws (ensurePebble),
 * failing the file loudly. Use at the top level: `const describePebble = await describeWithPebble('...');`.
 */
export async function describeWithPebble(what: string): Promise<typeof describe> {
  const status = await ensurePebble();
  if ('ok' in status) return describe;
  console.warn(`SKIPPED ${what}: ${status.missing}`);
  return describe.skip;
}

export interface PebbleOptions {
  /** Port Pebble's HTTP-01 checks connect to, on 127.0.0.1: where the test serves challenge answers. Default: a free one. */
  httpPort?: number;
  /** Lifetime of issued certificates in seconds (Pebble's `certificateValidityPeriod`); default Pebble's (~5 years). */
  certificateValiditySeconds?: number;
  /** false: allocate ports and files but leave Pebble down until `up()` (challtestsrv runs either way). Default true. */
  start?: boolean;
}

/** A running (or ready to run) Pebble with its fake DNS. */
export interface Pebble {
  /** The ACME directory URL (`https://127.0.0.1:<port>/dir`). */
  directoryUrl: string;
  /** PEM of the CA that signed Pebble's own HTTPS listener: what an ACME client must trust to talk to it. */
  listenerCaPem: string;
  /** Path of the same PEM, as an operator would configure it. */
  listenerCaFile: string;
  /** Port Pebble's HTTP-01 checks connect to. */
  httpPort: number;
  /** PEM of the root that issued the certificates (fetched at each `up()`: Pebble makes a new one at every start). */
  issuingRootPem(): string;
  /** Starts Pebble (no-op when it runs) and waits until it answers. */
  up(): Promise<void>;
  /** Stops Pebble (challtestsrv keeps running); its accounts and root are gone once it comes back up. */
  down(): Promise<void>;
  /** Sets the TXT record `fqdn` (e.g. `_acme-challenge.expose.test.`) to `value` in challtestsrv. */
  setTxt(fqdn: string, value: string): Promise<void>;
  /** Removes the TXT record `fqdn` from challtestsrv. */
  clearTxt(fqdn: string): Promise<void>;
  /** Stops both processes and removes the temporary directory. */
  stop(): Promise<void>;
}

/** Waits until `probe` resolves true, or throws naming `what` with its output. */
async function waitFor(what: string, probe: () => Promise<boolean>, proc: Subprocess, output: () => string): Promise<void> {
  const deadline = performance.now() + READY_TIMEOUT_MS;
  while (performance.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`${what} exited with ${proc.exitCode}: ${output()}`);
    if (await probe().catch(() => false)) return;
    await Bun.sleep(READY_POLL_MS);
  }
  throw new Error(`${what} did not answer within ${READY_TIMEOUT_MS} ms: ${output()}`);
}

/** Collects a child's stdout and stderr, for the error message when it fails to start. */
function spawnLogged(cmd: string[], env: Record<string, string | undefined>): { proc: Subprocess; output: () => string } {
  let text = '';
  const proc = Bun.spawn(cmd, { env, stdin: 'ignore', stdout: 'pipe', stderr: 'pipe' });
  const drain = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) text = (text + decoder.decode(chunk)).slice(-4000);
  };
  void drain(proc.stdout as ReadableStream<Uint8Array>);
  void drain(proc.stderr as ReadableStream<Uint8Array>);
  return { proc, output: () => text.trim().split('\n').slice(-5).join(' | ') };
}

/** A CA certificate and a certificate for 127.0.0.1/localhost signed by it, for Pebble's HTTPS listener. */
async function makeListenerCertificate(dir: string): Promise<{ caFile: string; certFile: string; keyFile: string }> {
  const caKey = join(dir, 'listener-ca.key');
  const caFile = join(dir, 'listener-ca.pem');
  const keyFile = join(dir, 'listener.key');
  const csr = join(dir, 'listener.csr');
  const certFile = join(dir, 'listener.pem');
  const ext = join(dir, 'listener.ext');
  writeFileSync(ext, 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n');
  const steps = [
    ['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', String(LISTENER_CERT_DAYS),
      '-subj', '/CN=pebble listener test CA', '-keyout', caKey, '-out', caFile],
    ['openssl', 'req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=localhost', '-keyout', keyFile, '-out', csr],
    ['openssl', 'x509', '-req', '-in', csr, '-CA', caFile, '-CAkey', caKey, '-CAcreateserial', '-days', String(LISTENER_CERT_DAYS), '-extfile', ext, '-out', certFile],
  ];
  for (const step of steps) {
    const result = await run(step, 30_000);
    if (!result.ok) throw new Error(`${step.slice(0, 3).join(' ')} failed: ${result.output}`);
  }
  return { caFile, certFile, keyFile };
}

/**
 * Starts challtestsrv, and Pebble unless `start: false`. Call `stop()` when done (afterAll / finally).
 * Throws when Pebble is not installed: use `describeWithPebble()` (or `ensurePebble()`) first to skip instead.
 */
export async function startPebble(options: PebbleOptions = {}): Promise<Pebble> {
  const dir = mkdtempSync(join(tmpdir(), 'expose-pebble-'));
  const [listenPort, managementPort, tlsPort, dnsPort, challtestManagementPort] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
  const httpPort = options.httpPort ?? (await freePort());
  const { caFile, certFile, keyFile } = await makeListenerCertificate(dir);
  const listenerCaPem = await Bun.file(caFile).text();
  const configFile = join(dir, 'pebble-config.json');
  writeFileSync(
    configFile,
    JSON.stringify({
      pebble: {
        listenAddress: `127.0.0.1:${listenPort}`,
        managementListenAddress: `127.0.0.1:${managementPort}`,
        certificate: certFile,
        privateKey: keyFile,
        httpPort,
        tlsPort,
        ocspResponderURL: '',
        externalAccountBindingRequired: false,
        ...(options.certificateValiditySeconds !== undefined ? { certificateValidityPeriod: options.certificateValiditySeconds } : {}),
      },
    }),
  );
  // Pebble's own HTTPS (directory and management) is signed by the listener CA made above.
  const httpsGet = (url: string) => fetch(url, { tls: { ca: listenerCaPem } });

  const challtest = spawnLogged(
    [CHALLTESTSRV_PATH, '-http01', '', '-https01', '', '-tlsalpn01', '', '-dns01', `127.0.0.1:${dnsPort}`, '-management', `127.0.0.1:${challtestManagementPort}`, '-defaultIPv6', ''],
    { ...process.env },
  );
  const challtestUrl = `http://127.0.0.1:${challtestManagementPort}`;
  const management = async (path: string, body: unknown) => {
    const response = await fetch(`${challtestUrl}${path}`, { method: 'POST', body: JSON.stringify(body) });
    if (!response.ok) throw new Error(`challtestsrv ${path}: ${response.status} ${await response.text()}`);
  };

  let pebble: { proc: Subprocess; output: () => string } | undefined;
  let root: string | undefined;
  const directoryUrl = `https://127.0.0.1:${listenPort}/dir`;

  const up = async () => {
    if (pebble !== undefined) return;
    // No sleep before validating (Pebble otherwise waits up to 5 s to shake out racy clients), and no
    // nonce refused at random (5 % by default): acme-client retries those, but tests want one path.
    pebble = spawnLogged([PEBBLE_PATH, '-config', configFile, '-dnsserver', `127.0.0.1:${dnsPort}`], { ...process.env, PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0' });
    const started = pebble;
    try {
      await waitFor('pebble', async () => (await httpsGet(directoryUrl)).ok, started.proc, started.output);
      const response = await httpsGet(`https://127.0.0.1:${managementPort}/roots/0`);
      if (!response.ok) throw new Error(`pebble /roots/0: ${response.status}`);
      root = await response.text();
    } catch (error) {
      await down();
      throw error;
    }
  };

  const down = async () => {
    const running = pebble;
    pebble = undefined;
    root = undefined;
    if (running === undefined) return;
    running.proc.kill();
    await running.proc.exited;
  };

  try {
    await waitFor('pebble-challtestsrv', async () => (await fetch(`${challtestUrl}/clear-txt`, { method: 'POST', body: '{"host":"ready.test."}' })).ok, challtest.proc, challtest.output);
    if (options.start !== false) await up();
  } catch (error) {
    await down();
    challtest.proc.kill();
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }

  return {
    directoryUrl,
    listenerCaPem,
    listenerCaFile: caFile,
    httpPort,
    issuingRootPem: () => {
      if (root === undefined) throw new Error('pebble is not running');
      return root;
    },
    up,
    down,
    setTxt: (fqdn, value) => management('/set-txt', { host: fqdn, value }),
    clearTxt: (fqdn) => management('/clear-txt', { host: fqdn }),
    stop: async () => {
      await down();
      challtest.proc.kill();
      await challtest.proc.exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
