/**
 * Debian's Chromium for the browser tests: used when installed, installed with apt-get when the tests
 * run as root (as CI does), otherwise reported as missing with the reason, so the test is skipped
 * with a message rather than failed.
 */
import { existsSync } from 'node:fs';
import { ensureDebianPackage } from './apt.ts';

/** Where Debian's `chromium` package puts its launcher. */
export const CHROMIUM_PATH = '/usr/bin/chromium';

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

/** The Chromium executable, or why there is none. Installs it when it can. */
export async function ensureChromium(): Promise<{ path: string } | { missing: string }> {
  const missing = await ensureDebianPackage('chromium', 'Chromium', () => existsSync(CHROMIUM_PATH));
  return missing === undefined ? { path: CHROMIUM_PATH } : { missing };
}
