/**
 * Bounded soak (not in CI): mixed traffic against one server for a few minutes, watching its resident
 * memory and open file descriptors, and counting every answer that is not the expected one.
 *   bun bench/soak.ts [--seconds 150] [--workers 16]
 * Exits 1 if any answer was unexpected or memory or descriptors kept growing. Figures go to stdout
 * and bench/results/soak.json; the server's warnings and errors to a log file whose path it prints.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startBenchServer } from './lib/bench-server.ts';
import { judgeGrowth } from './lib/growth.ts';
import { CORES, openFds, rssBytes } from './lib/process.ts';
import { round } from './lib/stats.ts';

const { values } = parseArgs({
  args: Bun.argv.slice(2),
  options: { seconds: { type: 'string', default: '150' }, workers: { type: 'string', default: '16' } },
  strict: true,
});
const DURATION_MS = Number(values.seconds) * 1000;
const WORKERS = Number(values.workers);
const ACCOUNTS = 12;
const SAMPLE_EVERY_MS = 5000;
/** Samples before this are start-up and JIT warm-up, not growth. */
const WARMUP_MS = 20_000;
const PASSWORD = 'soak-password-not-common-19';
const MIB = 1024 * 1024;

if (CORES.pinned) Bun.spawnSync(['taskset', '-a', '-p', '-c', CORES.load, String(process.pid)], { stdout: 'ignore' });

// Limits high rather than off, so the limiter's buckets (keyed by a random forwarded address from a
// trusted proxy, for anonymous requests) are exercised and swept all along without refusing anyone.
const LOG_FILE = join(mkdtempSync(join(tmpdir(), 'expose-soak-')), 'server.log');
const server = await startBenchServer(
  { EXPOSE_RATE_LIMIT_API: '1000000', EXPOSE_RATE_LIMIT_AUTH: '1000000', EXPOSE_TRUSTED_PROXIES: '127.0.0.1', EXPOSE_LOG_LEVEL: 'warn' },
  [],
  LOG_FILE,
);
const base = server.appUrl;
const pid = server.child.pid;

interface Account {
  email: string;
  token: string;
  key: string;
}

const counts = new Map<string, number>();
const unexpected = new Map<string, number>();
let requests = 0;

function randomAddress(): string {
  const n = (Math.random() * 2 ** 32) >>> 0;
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** One request; an answer other than `expect` (or a network error) is counted against the run. */
async function call(op: string, expect: number, path: string, init: RequestInit = {}): Promise<Response | undefined> {
  requests++;
  counts.set(op, (counts.get(op) ?? 0) + 1);
  try {
    const res = await fetch(`${base}${path}`, init);
    if (res.status !== expect) {
      unexpected.set(`${op}: ${res.status}`, (unexpected.get(`${op}: ${res.status}`) ?? 0) + 1);
      await res.arrayBuffer();
      return undefined;
    }
    return res;
  } catch (error) {
    unexpected.set(`${op}: ${(error as Error).name}`, (unexpected.get(`${op}: ${(error as Error).name}`) ?? 0) + 1);
    return undefined;
  }
}

const json = (body: unknown, headers: Record<string, string> = {}) => ({
  method: 'POST',
  headers: { 'content-type': 'application/json', 'x-forwarded-for': randomAddress(), ...headers },
  body: JSON.stringify(body),
});
const bearer = (credential: string) => ({ headers: { authorization: `Bearer ${credential}` } });

/** Registers an account with one key; undefined (already counted as unexpected) if either step failed. */
async function register(email: string): Promise<Account | undefined> {
  const res = await call('register', 201, '/api/v1/auth/register', json({ email, password: PASSWORD }));
  if (!res) return undefined;
  const { token } = (await res.json()) as { token: string };
  const created = await call('create key', 201, '/api/v1/api-keys', json({ name: 'soak' }, { authorization: `Bearer ${token}` }));
  if (!created) return undefined;
  const { key } = (await created.json()) as { key: string };
  return { email, token, key };
}

process.stderr.write(`soak: registering ${ACCOUNTS} accounts...\n`);
const accounts: Account[] = [];
for (let i = 0; i < ACCOUNTS; i++) {
  const account = await register(`soak-${i}@example.com`);
  if (!account) {
    await server.close();
    throw new Error(`setup failed: ${JSON.stringify(Object.fromEntries(unexpected))}`);
  }
  accounts.push(account);
}
const pick = () => accounts[Math.floor(Math.random() * accounts.length)]!;

const deadline = Date.now() + DURATION_MS;

/** The fast mix: reads with both credentials, refusals, key churn, unknown routes, health. */
async function fastWorker(): Promise<void> {
  while (Date.now() < deadline) {
    const roll = Math.random();
    const account = pick();
    let res: Response | undefined;
    if (roll < 0.35) res = await call('me (jwt)', 200, '/api/v1/users/me', bearer(account.token));
    else if (roll < 0.6) res = await call('me (api key)', 200, '/api/v1/users/me', bearer(account.key));
    else if (roll < 0.7) res = await call('list keys', 200, '/api/v1/api-keys', bearer(account.token));
    else if (roll < 0.75) {
      const created = await call('create key', 201, '/api/v1/api-keys', json({ name: 'churn' }, { authorization: `Bearer ${account.token}` }));
      if (created) {
        const { api_key, key } = (await created.json()) as { api_key: { id: string }; key: string };
        await (await call('use new key', 200, '/api/v1/users/me', bearer(key)))?.arrayBuffer();
        await (await call('delete key', 204, `/api/v1/api-keys/${api_key.id}`, { method: 'DELETE', ...bearer(account.token) }))?.arrayBuffer();
        res = await call('deleted key refused', 401, '/api/v1/users/me', bearer(key));
      }
    } else if (roll < 0.83) res = await call('bad token', 401, '/api/v1/users/me', { headers: { authorization: `Bearer garbage-${Math.random()}`, 'x-forwarded-for': randomAddress() } });
    else if (roll < 0.88) res = await call('bad body', 400, '/api/v1/api-keys', { ...json(null, { authorization: `Bearer ${account.token}` }), body: '{"name":' });
    else if (roll < 0.94) res = await call('unknown route', 404, `/api/v1/nothing/${Math.floor(Math.random() * 1000)}`, { headers: { 'x-forwarded-for': randomAddress() } });
    else res = await call('health', 200, '/health');
    await res?.arrayBuffer();
  }
}

/** The slow lane: full session life cycles (argon2 at production cost), and a registration now and then. */
async function sessionWorker(worker: number): Promise<void> {
  let n = 0;
  while (Date.now() < deadline) {
    const account = pick();
    const res = await call('login', 200, '/api/v1/auth/login', json({ email: account.email, password: PASSWORD }));
    if (res) {
      const { token } = (await res.json()) as { token: string };
      await (await call('me (fresh jwt)', 200, '/api/v1/users/me', bearer(token)))?.arrayBuffer();
      await (await call('logout', 204, '/api/v1/auth/logout', { method: 'POST', ...bearer(token) }))?.arrayBuffer();
      await (await call('logged-out refused', 401, '/api/v1/users/me', bearer(token)))?.arrayBuffer();
    }
    await (await call('wrong password', 401, '/api/v1/auth/login', json({ email: `nobody-${n}@example.com`, password: 'not-the-password-0' })))?.arrayBuffer();
    if (++n % 5 === 0) await register(`soak-extra-w${worker}-${n}@example.com`);
  }
}

interface Sample {
  atSeconds: number;
  rssMiB: number;
  fds: number;
  requests: number;
}
const samples: Sample[] = [];
const startedMs = Date.now();
const sampler = setInterval(() => {
  samples.push({ atSeconds: Math.round((Date.now() - startedMs) / 1000), rssMiB: round(rssBytes(pid) / MIB, 1), fds: openFds(pid), requests });
  const last = samples.at(-1)!;
  process.stderr.write(`soak: ${last.atSeconds}s rss ${last.rssMiB} MiB, fds ${last.fds}, ${last.requests} requests\n`);
}, SAMPLE_EVERY_MS);

try {
  await Promise.all([...Array.from({ length: WORKERS }, fastWorker), sessionWorker(1), sessionWorker(2)]);
} finally {
  clearInterval(sampler);
  await server.close();
}

// Flat: the last third of the steady samples no more than 10% (+5 MiB of allocator slack) above the
// first, and open descriptors within 4 of each other throughout (bench/lib/growth.ts).
const growth = judgeGrowth(samples, { warmupSeconds: WARMUP_MS / 1000, fdSpread: 4 });
const rssEarly = growth.rssMiB.earlyMedian;
const rssLate = growth.rssMiB.lateMedian;
const errors = [...unexpected.values()].reduce((a, b) => a + b, 0);
const elapsedSeconds = (Date.now() - startedMs) / 1000;
const summary = {
  date: new Date().toISOString(),
  seconds: round(elapsedSeconds, 0),
  workers: WORKERS + 2,
  requests,
  requestsPerSecond: round(requests / elapsedSeconds, 0),
  errors,
  errorRate: requests === 0 ? 0 : errors / requests,
  unexpected: Object.fromEntries(unexpected),
  operations: Object.fromEntries(counts),
  rssMiB: growth.rssMiB,
  fds: { min: growth.fds.min, max: growth.fds.max },
  samples,
};
const { rssFlat, fdsFlat } = growth;
const outDir = join(import.meta.dir, 'results');
mkdirSync(outDir, { recursive: true });
writeFileSync(join(outDir, 'soak.json'), `${JSON.stringify({ ...summary, rssFlat, fdsFlat }, null, 2)}\n`);
process.stdout.write(
  [
    `soak: ${summary.seconds} s, ${requests} requests (${summary.requestsPerSecond}/s), ${errors} unexpected answers`,
    `  RSS: ${rssEarly} MiB early -> ${rssLate} MiB late (min ${summary.rssMiB.min}, max ${summary.rssMiB.max}) ${rssFlat ? 'flat' : 'GROWING'}`,
    `  open fds: ${summary.fds.min}..${summary.fds.max} ${fdsFlat ? 'flat' : 'GROWING'}`,
    `  server warnings and errors: ${LOG_FILE}`,
    errors > 0 ? `  unexpected: ${JSON.stringify(summary.unexpected)}` : '',
  ].filter(Boolean).join('\n') + '\n',
);
process.exit(errors === 0 && rssFlat && fdsFlat ? 0 : 1);
