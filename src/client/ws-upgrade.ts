/** A visitor's WebSocket upgrade (WsUpgrade): the local socket's URL, headers and subprotocols. The relay itself is ws-stream.ts. */
import type { HeaderPair, WsUpgradeData } from '../tunnel/protocol.ts';
import { localRequestHeaders, type HostHeaderMode } from './headers.ts';
import type { RelayStream, StreamContext } from './stream-context.ts';
import type { LocalTarget } from './target.ts';
import { WebSocketStream } from './ws-stream.ts';

// Bun's client makes its own handshake headers: a fresh key, version 13, its own extension offer,
// and the subprotocol list from `protocols`. The visitor's would belong to the other connection.
const HANDSHAKE_HEADERS = new Set(['sec-websocket-key', 'sec-websocket-version', 'sec-websocket-extensions', 'sec-websocket-protocol']);

/** `ws://` or `wss://` + the visitor's path: the local target's origin with its scheme swapped, joined by concatenation. */
export function localWebSocketUrl(target: LocalTarget, path: string): string {
  // Concatenation, never new URL(path, base): a path of "//evil.example/" must stay on the local target.
  return `${target.origin.replace(/^http/, 'ws')}${path}`;
}

/**
 * The subprotocols the visitor asked for, in their order: every `Sec-WebSocket-Protocol` value split
 * on commas, trimmed, empties and repeats dropped (a repeat would make the WebSocket constructor throw).
 */
export function requestedSubprotocols(pairs: readonly HeaderPair[]): string[] {
  const protocols: string[] = [];
  for (const [name, value] of pairs) {
    if (name.toLowerCase() !== 'sec-websocket-protocol') continue;
    for (const token of value.split(',')) {
      const protocol = token.trim();
      if (protocol !== '' && !protocols.includes(protocol)) protocols.push(protocol);
    }
  }
  return protocols;
}

/** The local upgrade request's headers: as for HTTP (hop-by-hop dropped, `Host` rewritten unless preserved), minus the handshake's own. */
export function localUpgradeHeaders(pairs: readonly HeaderPair[], targetHost: string, mode: HostHeaderMode): Headers {
  const headers = localRequestHeaders(pairs, targetHost, mode);
  for (const name of HANDSHAKE_HEADERS) headers.delete(name);
  return headers;
}

/**
 * Handles WsUpgrade: opens the local WebSocket and returns the stream to register under its id (it
 * answers WsUpgradeAccepted or StreamError itself once the local side has opened or refused).
 */
export function openWebSocketStream(ctx: StreamContext, upgrade: WsUpgradeData): RelayStream | undefined {
  return WebSocketStream.open(ctx, upgrade, {
    url: localWebSocketUrl(ctx.target, upgrade.path),
    headers: localUpgradeHeaders(upgrade.headers, ctx.target.host, ctx.hostHeader),
    protocols: requestedSubprotocols(upgrade.headers),
  });
}
