/** `expose login`: reads an API key, checks it against the server, saves it for later commands. */
import { writeConfig } from './config-file.ts';
import { ClientError } from './errors.ts';
import { printable } from './format.ts';

/** How long the key check may take before we give up, in milliseconds. */
const CHECK_TIMEOUT_MS = 15_000;
// Three base64url parts, the first a JSON object: a session token (JWT), not an API key. The users
// endpoint accepts both, but the tunnel refuses a JWT, so catch the mix-up here.
const JWT_PATTERN = /^eyJ[\w-]*\.[\w-]*\.[\w-]*$/;

/** What login needs; tests hand in their own reader and output. */
export interface LoginOptions {
  server: string;
  configPath: string;
  /** An extra CA file to trust (absolute), saved with the login so later commands trust it too. */
  caFile?: string;
  /** The certificates to trust, from trustedCertificates(caFile); undefined: the system's. */
  ca?: string[];
  readKey(): Promise<string>;
  writeLine(line: string): void;
}

/**
 * Checks the key with `GET {server}/api/v1/users/me` (200: good; 401: refused) and saves it.
 * @throws ClientError when the key is refused or the server cannot be asked; nothing is saved then.
 */
export async function login(options: LoginOptions): Promise<void> {
  const key = await options.readKey();
  if (JWT_PATTERN.test(key)) throw new ClientError('that is a session token, not an API key: create an API key and use it');
  let response: Response;
  try {
    response = await fetch(`${options.server}/api/v1/users/me`, {
      headers: { authorization: `Bearer ${key}`, accept: 'application/json' },
      // A redirect would carry the key to wherever it points; the user should name the right URL instead.
      redirect: 'manual',
      signal: AbortSignal.timeout(CHECK_TIMEOUT_MS),
      ...(options.ca !== undefined ? { tls: { ca: options.ca } } : {}),
    });
  } catch (error) {
    throw new ClientError(`cannot reach ${options.server}: ${networkErrorText(error)}`);
  }
  if (response.status === 401) throw new ClientError('the server refused this API key (401 unauthorized)');
  if (response.status >= 300 && response.status < 400) {
    const location = printable(response.headers.get('location') ?? 'elsewhere');
    throw new ClientError(`the server redirects to ${location}: give that address with --server`);
  }
  if (response.status !== 200) throw new ClientError(`unexpected answer from ${options.server}: HTTP ${response.status}`);
  const email = await accountEmail(response);
  writeConfig(options.configPath, { server: options.server, api_key: key, ...(options.caFile !== undefined ? { ca_file: options.caFile } : {}) });
  options.writeLine(`Logged in to ${options.server}${email === undefined ? '' : ` as ${email}`}; key saved to ${options.configPath}`);
}

async function accountEmail(response: Response): Promise<string | undefined> {
  try {
    const body = (await response.json()) as { email?: unknown };
    return typeof body.email === 'string' ? printable(body.email) : undefined;
  } catch {
    return undefined;
  }
}

function networkErrorText(error: unknown): string {
  if (error instanceof DOMException && error.name === 'TimeoutError') return `no answer within ${CHECK_TIMEOUT_MS / 1000} s`;
  const code = (error as { code?: unknown }).code;
  if (code === 'ECONNREFUSED') return 'connection refused';
  if (code === 'ENOTFOUND') return 'host not found';
  return printable(error instanceof Error ? error.message : String(error));
}
