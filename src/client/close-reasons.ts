/** What the end of a connection means: reconnect (and why, for the display) or stop with one line for the user. */
import {
  CLOSE_AUTH_TIMEOUT,
  CLOSE_CLOSED_BY_OWNER,
  CLOSE_FORBIDDEN,
  CLOSE_GOING_AWAY,
  CLOSE_PROTOCOL_ERROR,
  CLOSE_REPLACED,
  CLOSE_UNAUTHORIZED,
  NO_RECONNECT_CLOSE_CODES,
} from '../tunnel/protocol.ts';
import type { ConnectionEnd } from './connection.ts';

/** The decision after a connection ended. */
export type Verdict = { action: 'reconnect'; detail: string } | { action: 'stop'; message: string };

const UNAUTHORIZED = 'unauthorized: the server refused the API key (run `expose login` with a valid key)';
const FORBIDDEN = 'forbidden: tunnels need an API key, not a session token';
const REVOKED = 'API key revoked';
const CLOSED_BY_OWNER = 'tunnel closed by its owner';
const REPLACED = 'replaced by a newer connection for the same subdomain';

// What a GoAway reason means to the user; its close code follows it.
const GO_AWAY_TEXT: Record<string, string> = {
  shutdown: 'server shutting down',
  revoked: REVOKED,
  closed_by_owner: CLOSED_BY_OWNER,
  replaced: REPLACED,
};

const CLOSE_CODE_TEXT: Record<number, string> = {
  1000: 'closed by the server',
  1006: 'connection lost',
  [CLOSE_GOING_AWAY]: 'server shutting down',
  [CLOSE_PROTOCOL_ERROR]: 'protocol error',
  [CLOSE_AUTH_TIMEOUT]: 'authentication timed out',
};

/**
 * Judges how a connection ended. Never reconnect after a refused credential, a revoked key, a
 * tunnel closed by its owner (4001, 4003, 4010, or AuthResult failure) or a replacement (4009):
 * retrying could not succeed, or someone asked for the tunnel to stop. Before the tunnel was ever
 * ready, every failure stops too: a wrong server URL or a taken name is the user's to fix now, not
 * something to retry in silence. Everything else (a drop, a restart, silence) reconnects.
 */
export function judgeEnd(end: ConnectionEnd, everReady: boolean): Verdict {
  switch (end.kind) {
    case 'stopped':
      return { action: 'stop', message: '' };
    case 'auth_failed':
      return { action: 'stop', message: end.error === 'unauthorized' ? UNAUTHORIZED : end.error === 'forbidden' ? FORBIDDEN : `authentication failed: ${end.error}` };
    case 'tunnel_error':
      return { action: 'stop', message: `${end.message} (${end.error})` };
    case 'dead':
      return retry(`no word from the server for ${(end.silentMs / 1000).toFixed(1)} s`, everReady);
    case 'protocol_error':
      return retry(`the server sent an invalid message: ${end.error}`, everReady);
    case 'closed':
      return judgeClose(end, everReady);
  }
}

function judgeClose(end: Extract<ConnectionEnd, { kind: 'closed' }>, everReady: boolean): Verdict {
  const goAway = end.goAway !== undefined && Object.hasOwn(GO_AWAY_TEXT, end.goAway) ? GO_AWAY_TEXT[end.goAway] : undefined;
  if (NO_RECONNECT_CLOSE_CODES.has(end.code) || end.code === CLOSE_REPLACED) {
    return { action: 'stop', message: goAway ?? fatalCloseText(end.code, end.authenticated) };
  }
  if (!end.opened) return retry(`cannot reach the server: ${end.failure ?? 'connection failed'}`, everReady);
  const reason = goAway ?? CLOSE_CODE_TEXT[end.code] ?? `closed by the server (code ${end.code})`;
  return retry(reason, everReady);
}

function fatalCloseText(code: number, authenticated: boolean): string {
  if (code === CLOSE_UNAUTHORIZED) return authenticated ? REVOKED : UNAUTHORIZED;
  if (code === CLOSE_FORBIDDEN) return FORBIDDEN;
  if (code === CLOSE_CLOSED_BY_OWNER) return CLOSED_BY_OWNER;
  return REPLACED;
}

function retry(detail: string, everReady: boolean): Verdict {
  return everReady ? { action: 'reconnect', detail } : { action: 'stop', message: detail };
}
