/**
 * Debian's Chromium for the browser tests: used when installed, installed with apt-get when the tests
 * run as root (as CI does), otherwise reported as missing with the reason, so the test is skipped
 * with a message rather than failed.
 */
import { existsSync } from 'node:fs';

/** Where Debian's `chromium` package puts its launcher. */
export const CHROMIUM_PATH = '/usr/bin/chromium';
/** Bound on `apt-get update` and on the install; a cold install downloads ~100 MB. */
const APT_UPDATE_TIMEOUT_MS = 120_000;
const APT_INSTALL_TIMEOUT_MS = 300_000;

/** Flags for a quiet, hermetic headless run: no sandbox (containers, root), no calls home. */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
];

async function run(cmd: string[], timeoutMs: number): Promise<{ ok: boolean; output: string }> {
  const proc = Bun.spawn(cmd, {
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
    timeout: timeoutMs,
  });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { ok: code === 0, output: `${stdout}\n${stderr}`.trim().split('\n').slice(-3).join(' | ') };
}

/** The Chromium executable, or why there is none. Installs it when it can. */
export async function ensureChromium(): Promise<{ path: string } | { missing: string }> {
  if (existsSync(CHROMIUM_PATH)) return { path: CHROMIUM_PATH };
  if (process.platform !== 'linux' || !existsSync('/usr/bin/apt-get')) return { missing: 'Chromium is not installed and this is not a Debian-like system (no apt-get)' };
  if (process.getuid?.() !== 0) return { missing: `Chromium is not installed and the tests are not root, so cannot install it (run: sudo apt-get install chromium)` };
  const update = await run(['apt-get', 'update'], APT_UPDATE_TIMEOUT_MS);
  if (!update.ok) return { missing: `apt-get update failed: ${update.output}` };
  const install = await run(['apt-get', 'install', '-y', '--no-install-recommends', 'chromium'], APT_INSTALL_TIMEOUT_MS);
  if (!install.ok || !existsSync(CHROMIUM_PATH)) return { missing: `apt-get install chromium failed: ${install.output}` };
  return { path: CHROMIUM_PATH };
}
