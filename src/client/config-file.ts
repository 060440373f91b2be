/** The saved login: `$XDG_CONFIG_HOME/expose/config.json` (default `~/.config/expose/config.json`), mode 0600 in a 0700 directory. */
import { chmodSync, closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { ClientError } from './errors.ts';

/** What `expose login` saves (snake_case, as the file is read by people too). */
export interface SavedConfig {
  server: string;
  api_key: string;
  /** Absolute path of the extra CA file given at login (`--ca-file`), for a server with a private certificate. */
  ca_file?: string;
}

/** The config file's path. XDG says a relative XDG_CONFIG_HOME is invalid and must be ignored. */
export function configPath(env: Record<string, string | undefined>): string {
  const xdg = env.XDG_CONFIG_HOME;
  const base = xdg !== undefined && xdg !== '' && isAbsolute(xdg) ? xdg : join(env.HOME || homedir(), '.config');
  return join(base, 'expose', 'config.json');
}

/**
 * The saved config, or undefined when there is none.
 * @throws ClientError when the file exists but is not a config we wrote.
 */
export function readConfig(path: string): SavedConfig | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new ClientError(`cannot read ${path}: ${(error as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new ClientError(`${path} is not valid JSON (run \`expose login\` again to rewrite it)`);
  }
  const config = parsed as Partial<SavedConfig> | null;
  if (typeof config !== 'object' || config === null || typeof config.server !== 'string' || typeof config.api_key !== 'string') {
    throw new ClientError(`${path} lacks "server" or "api_key" (run \`expose login\` again to rewrite it)`);
  }
  return { server: config.server, api_key: config.api_key, ...(typeof config.ca_file === 'string' ? { ca_file: config.ca_file } : {}) };
}

/**
 * Saves the config: the directory made (or tightened to) 0700, the file written beside its final
 * name with mode 0600 from the start, flushed, then renamed over it. The key is never readable by
 * others, not even for a moment, and a crash leaves the old file or the new one, never half of one.
 */
export function writeConfig(path: string, config: SavedConfig): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const temporary = `${path}.${process.pid}.tmp`;
  rmSync(temporary, { force: true });
  // 'wx': never through a file (or a symlink) someone planted at the temporary name.
  const fd = openSync(temporary, 'wx', 0o600);
  try {
    const saved: SavedConfig = { server: config.server, api_key: config.api_key, ...(config.ca_file !== undefined ? { ca_file: config.ca_file } : {}) };
    writeSync(fd, `${JSON.stringify(saved, null, 2)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  // The umask can only take bits away from 0600; this makes the mode exact whatever it is.
  chmodSync(temporary, 0o600);
  renameSync(temporary, path);
}
