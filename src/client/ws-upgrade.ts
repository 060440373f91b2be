/** A visitor's WebSocket upgrade (WsUpgrade). Passthrough comes with the next issue; until then it is refused cleanly. */
import type { WsUpgradeData } from '../tunnel/protocol.ts';
import { pathWithoutQuery } from './events.ts';
import type { RelayStream, StreamContext } from './stream-context.ts';

/** The StreamError text the server turns into the visitor's 502. */
export const WS_UNSUPPORTED = 'WebSocket passthrough is not supported by this client yet';

/**
 * Handles WsUpgrade: returns the stream to register under its id, or undefined when the upgrade was
 * refused. Passthrough will open the local WebSocket here and return a stream that relays WS_*
 * frames (answering WsUpgradeAccepted once the local side is open); the connection needs no change.
 */
export function openWebSocketStream(ctx: StreamContext, upgrade: WsUpgradeData): RelayStream | undefined {
  ctx.sender.control({ type: 'StreamError', data: { stream_id: upgrade.stream_id, error: WS_UNSUPPORTED } });
  ctx.logRequest({ startedAtMs: ctx.now(), method: 'GET', path: pathWithoutQuery(upgrade.path), status: 502, durationMs: 0, error: WS_UNSUPPORTED });
  return undefined;
}
