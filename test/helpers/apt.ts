/**
 * Debian packages a test needs (Chromium, Pebble): used when installed, installed with apt-get when
 * the tests run as root (as CI does), otherwise reported as missing with the reason, so the test is
 * skipped with a message rather than failed.
 */
import { existsSync } from 'node:fs';

/** Bound on `apt-get update` and on the install; a cold Chromium install downloads ~100 MB. */
const APT_UPDATE_TIMEOUT_MS = 120_000;
const APT_INSTALL_TIMEOUT_MS = 300_000;

/** Runs `cmd` with a time limit; `output` is the last three lines of what it printed. */
export async function run(cmd: string[], timeoutMs: number): Promise<{ ok: boolean; output: string }> {
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

/**
 * Makes Debian's `pkg` available: nothing to do when `present()` holds, else apt-get as root.
 * Resolves undefined when it is there, or the reason it is not (`what` names it in that reason).
 */
export async function ensureDebianPackage(pkg: string, what: string, present: () => boolean): Promise<string | undefined> {
  if (present()) return undefined;
  if (process.platform !== 'linux' || !existsSync('/usr/bin/apt-get')) return `${what} is not installed and this is not a Debian-like system (no apt-get)`;
  if (process.getuid?.() !== 0) return `${what} is not installed and the tests are not root, so cannot install it (run: sudo apt-get install ${pkg})`;
  const update = await run(['apt-get', 'update'], APT_UPDATE_TIMEOUT_MS);
  if (!update.ok) return `apt-get update failed: ${update.output}`;
  const install = await run(['apt-get', 'install', '-y', '--no-install-recommends', pkg], APT_INSTALL_TIMEOUT_MS);
  if (!install.ok || !present()) return `apt-get install ${pkg} failed: ${install.output}`;
  return undefined;
}
