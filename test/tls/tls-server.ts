/**
 * A real server with TLS on, in process (`listenTls`), for the end-to-end TLS tests: its log as
 * events, HTTPS requests trusting a given root and naming the host (names under `.localhost` resolve to
 * 127.0.0.1, so the real `expose` client and visitors use real host names), accounts made through
 * the API over HTTPS, and the `expose` client started against it.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import { loadConfig } from '../../src/config.ts';
import { openDb, type DbHandle } from '../../src/db/client.ts';
import { migrate } from '../../src/db/migrate.ts';
import { createLogger } from '../../src/lib/logger.ts';
import { listenTls, type RunningTlsServer } from '../../src/server.ts';
import type { AcmeTuning } from '../../src/tls/acme-source.ts';
import { CHEAP_HASHER, GOOD_PASSWORD, TEST_SECRET, uniqueEmail } from '../helpers/app.ts';
import { Lines, cleanEnv, spawnClient } from '../client/process.ts';

/** The API's host name in these tests, and the tunnel domain: both resolve to 127.0.0.1 without DNS. */
export const API_HOST = 'api.localhost';
export const TUNNEL_DOMAIN = 'expose.localhost';
/** ACME against Pebble, which validates at once: quick polls, quick retries. */
export const FAST_ACME: AcmeTuning = { pollMinMs: 20, pollMaxMs: 200, requestRetries: 0, retry: { baseMs: 200, maxMs: 1_000 } };
/** How long a test waits for a log line: Pebble answers in well under a second, but the machine is shared. */
export const WAIT_MS = 30_000;

export interface TlsTestServer {
  running: RunningTlsServer;
  /** The HTTPS port. */
  port: number;
  lines: string[];
  /** Resolves with the first log entry (past or future, from line `since` on: default all) for which `match` holds. */
  logged(match: (entry: Record<string, unknown>) => boolean, what: string, timeoutMs?: number, since?: number): Promise<Record<string, unknown>>;
  /** `https://{host}:{port}{path}`. */
  url(host: string, path?: string): string;
  /** An HTTPS request to `host` trusting only `root`; `serial` is set to the served certificate's serial. */
  fetch(host: string, path: string, root: string, init?: RequestInit): Promise<Response & { serial: string }>;
  /** Registers an account and makes an API key, over HTTPS. */
  newUser(root: string): Promise<{ token: string; key: string }>;
  /** Stops every listener (cutting connections) and closes the database. */
  stop(): Promise<void>;
}

/** Starts a TLS server with `env` over the test defaults (acme, api.localhost, expose.localhost, rate limits off). */
export async function startTlsServer(env: Record<string, string>, options: { db?: DbHandle; acme?: AcmeTuning } = {}): Promise<TlsTestServer> {
  const config = loadConfig({
    EXPOSE_DB: ':memory:',
    EXPOSE_HOST: '127.0.0.1',
    EXPOSE_TLS: 'acme',
    EXPOSE_HTTPS_PORT: '0',
    EXPOSE_API_HOST: API_HOST,
    EXPOSE_TUNNEL_DOMAIN: TUNNEL_DOMAIN,
    EXPOSE_JWT_SECRET: TEST_SECRET,
    EXPOSE_RATE_LIMIT_AUTH: '0',
    EXPOSE_RATE_LIMIT_API: '0',
    ...env,
  });
  const db = options.db ?? openDb(':memory:');
  if (options.db === undefined) migrate(db.db);
  const lines: string[] = [];
  const waiters = new Set<() => void>();
  const logger = createLogger('debug', (line) => {
    lines.push(line);
    for (const waiter of [...waiters]) waiter();
  });
  const running = await listenTls({ config, db, jwtSecret: TEST_SECRET, logger, hasher: CHEAP_HASHER(), acme: options.acme ?? FAST_ACME });
  const port = running.port;

  const logged: TlsTestServer['logged'] = (match, what, timeoutMs = WAIT_MS, since = 0) => {
    const find = () => lines.slice(since).map((line) => JSON.parse(line) as Record<string, unknown>).find(match);
    const found = find();
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.delete(waiter);
        reject(new Error(`no log line within ${timeoutMs} ms: ${what}; log:\n${lines.join('')}`));
      }, timeoutMs);
      const waiter = () => {
        const entry = find();
        if (!entry) return;
        clearTimeout(timer);
        waiters.delete(waiter);
        resolve(entry);
      };
      waiters.add(waiter);
    });
  };
  const url = (host: string, path = '/') => `https://${host}:${port}${path}`;
  const fetchHttps: TlsTestServer['fetch'] = async (host, path, root, init = {}) => {
    let serial = '';
    const response = await fetch(url(host, path), {
      ...init,
      tls: {
        ca: root,
        checkServerIdentity: (name: string, cert: PeerCertificate) => {
          serial = cert.serialNumber;
          return checkServerIdentity(name, cert);
        },
      },
    });
    return Object.assign(response, { serial });
  };
  const json = (body: unknown, credential?: string): RequestInit => ({
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(credential ? { authorization: `Bearer ${credential}` } : {}) },
    body: JSON.stringify(body),
  });
  return {
    running,
    port,
    lines,
    logged,
    url,
    fetch: fetchHttps,
    async newUser(root) {
      const registered = await fetchHttps(API_HOST, '/api/v1/auth/register', root, json({ email: uniqueEmail(), password: GOOD_PASSWORD }));
      if (registered.status !== 201) throw new Error(`register: ${registered.status} ${await registered.text()}`);
      const { token } = (await registered.json()) as { token: string };
      const created = await fetchHttps(API_HOST, '/api/v1/api-keys', root, json({ name: 'tls test' }, token));
      if (created.status !== 201) throw new Error(`create key: ${created.status} ${await created.text()}`);
      return { token, key: ((await created.json()) as { key: string }).key };
    },
    async stop() {
      running.relay.shutdown();
      await running.stop(true);
      if (options.db === undefined) db.sqlite.close();
    },
  };
}

/** Waits until `check` holds, polling; throws naming `what` after `timeoutMs`. */
export async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = WAIT_MS): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await Bun.sleep(20);
  }
}

/** A temporary directory for PEM files the client reads; removed by the returned function. */
export function pemDir(): { write(name: string, pem: string): string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'expose-tls-'));
  return {
    write(name, pem) {
      const path = join(dir, name);
      writeFileSync(path, pem);
      return path;
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/**
 * Starts the real `expose http` against `serverUrl`, trusting `caFile`; resolves with its `ready`
 * event (the public URL) and its output, which the caller reads further. Killed by cleanUp().
 */
export async function startExpose(serverUrl: string, key: string, localPort: number, subdomain: string, caFile: string) {
  const child = spawnClient(['http', String(localPort), '--subdomain', subdomain, '--json', '--server', serverUrl, '--ca-file', caFile], cleanEnv({ EXPOSE_API_KEY: key }));
  const lines = new Lines(child.stdout as ReadableStream<Uint8Array>);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`expose did not connect within ${WAIT_MS} ms; it printed:\n${lines.seen.join('\n')}`)), WAIT_MS);
  });
  try {
    const ready = await Promise.race([lines.event('ready'), timeout]);
    return { child, lines, ready };
  } finally {
    clearTimeout(timer);
  }
}
