/** The local service a tunnel forwards to, from `expose http <port|host:port|url>`. */
import { UsageError } from './errors.ts';

/** Where requests go on this machine (or on the local network). */
export interface LocalTarget {
  /** Scheme, host and port, no trailing slash: the visitor's path is appended to it as a string. */
  origin: string;
  /** `Host` for the local request: the target's host, with the port when one was given. */
  host: string;
  /** The port, as RegisterTunnel's `local_port` reports it (80 or 443 when a URL names none). */
  port: number;
}

const DEFAULT_LOCAL_HOST = 'localhost';

// Errors do not quote the argument: a key pasted in the wrong place must not end up on screen.
const NOT_A_TARGET = 'the local target must be a port, host:port or an http(s) URL (e.g. 3000, 127.0.0.1:8080, http://localhost:5173)';

function parsePort(text: string): number {
  if (!/^\d{1,5}$/.test(text)) throw new UsageError(NOT_A_TARGET);
  const port = Number(text);
  if (port < 1 || port > 65_535) throw new UsageError('the local port must be from 1 to 65535');
  return port;
}

/**
 * Reads the target argument. `3000` is `http://localhost:3000`; `host:port` and `[v6]:port` keep
 * their host; a URL may be http or https and names an origin only (no path, query or credentials),
 * since the visitor's path is what gets appended.
 * @throws UsageError on anything else.
 */
export function parseTarget(input: string): LocalTarget {
  if (/^\d+$/.test(input)) {
    const port = parsePort(input);
    return { origin: `http://${DEFAULT_LOCAL_HOST}:${port}`, host: `${DEFAULT_LOCAL_HOST}:${port}`, port };
  }
  if (!input.includes('://')) {
    const match = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):([^:]*)$/.exec(input);
    if (match === null) throw new UsageError(NOT_A_TARGET);
    const port = parsePort(match[2]!);
    return { origin: `http://${match[1]}:${port}`, host: `${match[1]}:${port}`, port };
  }
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    throw new UsageError(NOT_A_TARGET);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(NOT_A_TARGET);
  if (url.username !== '' || url.password !== '') throw new UsageError('the local target URL must not hold credentials');
  if (url.pathname !== '/' || url.search !== '' || url.hash !== '') {
    throw new UsageError('the local target URL is an origin only, without a path or query');
  }
  const port = url.port === '' ? (url.protocol === 'https:' ? 443 : 80) : Number(url.port);
  return { origin: url.origin, host: url.host, port };
}
