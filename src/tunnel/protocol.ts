/** The tunnel wire protocol in one file: constants, JSON control messages and the binary frame codec, shared by server and client. */

// No imports on purpose: the `expose` client bundles this file, so it must carry nothing of the
// server (no Elysia, no database, no Bun-only API). Everything here is pure and never does I/O.
//
// Decoders face an untrusted peer: they never throw, do bounded work on bounded input (a control
// text is at most 64 KiB, a frame at most 64 KiB + 6), never copy attacker keys onto objects, and
// return a reason the caller can log before closing with CLOSE_PROTOCOL_ERROR. Encoders face our
// own code: they throw a RangeError on a message or frame the peer's decoder would refuse, so a
// bug (or a visitor's odd header) fails one request locally instead of killing the whole tunnel.

// ───────────────────────────── sizes and limits ─────────────────────────────

/** Bytes before every binary frame's payload: stream id (u32 BE), kind (u8), flags (u8). */
export const FRAME_HEADER_BYTES = 6;
/** Largest payload of one binary frame (64 KiB); bigger bodies and messages are split. */
export const MAX_FRAME_PAYLOAD_BYTES = 64 * 1024;
/** Largest control message, counted in UTF-8 bytes of the text frame (64 KiB); more is a protocol error. */
export const MAX_CONTROL_TEXT_BYTES = 64 * 1024;
/** Largest stream id: ids are unsigned 32-bit. Id 0 is never a stream (it means "the connection" in WindowUpdate). */
export const MAX_STREAM_ID = 0xffff_ffff;
/** WebSocket control frames (close, ping, pong) carry at most 125 payload bytes (RFC 6455 §5.5). */
export const MAX_WS_CONTROL_PAYLOAD_BYTES = 125;
/** A WebSocket close reason is at most 123 UTF-8 bytes: 125 minus the u16 code. */
export const MAX_WS_CLOSE_REASON_BYTES = 123;
/** Largest window grant or window size, in bytes: 2^31 − 1, as in HTTP/2, so sums of grants stay exact. */
export const MAX_WINDOW_BYTES = 0x7fff_ffff;

// Per-field bounds. The 64 KiB text already bounds the work; these bound what a session keeps in
// memory per connection or stream and what ends up in a log line.
/** Longest `api_key` accepted as a string: room for a JWT, so a JWT is answered `forbidden` instead of a protocol error. */
export const MAX_API_KEY_CHARS = 8192;
/** Longest identifier-like string: method, header name, feature name, subprotocol, `client`, ids, subdomain. */
export const MAX_TOKEN_CHARS = 256;
/** Longest human-readable or URL-like string: `message`, StreamError `error`, `public_url`, `resume_token`. */
export const MAX_TEXT_CHARS = 2048;
/** Longest `path` (path and query) of StreamOpen and WsUpgrade; longer request targets get 414 from the server. */
export const MAX_PATH_CHARS = 16 * 1024;
/** Most header pairs in one message (Node's default cap is 2000, uWS's about 100). */
export const MAX_HEADER_PAIRS = 1024;
/** Most entries in a `features` array. */
export const MAX_FEATURES = 32;
/** Longest `type` string worth reporting as unknown; longer is a protocol error. */
export const MAX_TYPE_CHARS = 64;

// ───────────────────────────── frame kinds and flags ─────────────────────────────

/** Binary frame kinds (exact). Kind 1 is unassigned and, like any other unlisted kind, refused. */
export const FrameKind = {
  /** Body bytes; FIN = this direction's body is complete (a DATA may be empty). */
  DATA: 0,
  /** UTF-8 bytes of a WebSocket text message; FIN = last piece of the message. */
  WS_TEXT: 2,
  /** Bytes of a WebSocket binary message; FIN = last piece. */
  WS_BINARY: 3,
  /** Empty (no code), or u16 close code + UTF-8 reason: see encodeWsClose/decodeWsClose. */
  WS_CLOSE: 4,
  /** Ping payload, relayed end to end. */
  WS_PING: 5,
  /** Pong payload, relayed end to end. */
  WS_PONG: 6,
} as const;
/** One of the FrameKind values. */
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind];
/** Kinds whose payload may be split across frames (the others fit in one WebSocket control frame). */
export type SplittableKind = typeof FrameKind.DATA | typeof FrameKind.WS_TEXT | typeof FrameKind.WS_BINARY;

/** Flag bit 0: the last frame of a body (DATA) or of a WebSocket message (WS_TEXT, WS_BINARY). */
export const FLAG_FIN = 1;
/** Every flag bit this version knows; a frame with any other bit set is refused, so a bit can be given meaning later. */
export const KNOWN_FLAGS = FLAG_FIN;

// ───────────────────────────── close codes, intervals, windows ─────────────────────────────

/** Close code (exact): bad, unknown or deleted API key, any invalid token, or a key revoked while connected. */
export const CLOSE_UNAUTHORIZED = 4001;
/** Close code (exact): protocol error (malformed message or frame, anything but Auth first, text over 64 KiB). */
export const CLOSE_PROTOCOL_ERROR = 4002;
/** Close code (exact): a valid credential of the wrong kind (a JWT). */
export const CLOSE_FORBIDDEN = 4003;
/** Close code (exact): no Auth within the auth timeout. */
export const CLOSE_AUTH_TIMEOUT = 4008;
/** Close code (exact): replaced by a newer connection of the same user claiming the subdomain. */
export const CLOSE_REPLACED = 4009;
/** Close code (exact): the tunnel was closed by its owner (`DELETE /api/v1/tunnels/{id}`). */
export const CLOSE_CLOSED_BY_OWNER = 4010;
/** Close code (exact): the server is shutting down (the standard WebSocket "going away"). */
export const CLOSE_GOING_AWAY = 1001;
/** Close codes after which a client must not reconnect: retrying could never succeed, or the owner asked. */
export const NO_RECONNECT_CLOSE_CODES: ReadonlySet<number> = new Set([CLOSE_UNAUTHORIZED, CLOSE_FORBIDDEN, CLOSE_CLOSED_BY_OWNER]);

/** Default time between Heartbeats each side sends, in milliseconds. Settable so tests run in milliseconds. */
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 30_000;
/** Default silence after which a peer is dead and its connection is closed, in milliseconds. */
export const DEFAULT_PEER_DEAD_AFTER_MS = 45_000;
/** Default time a new connection has to send Auth before it is closed with CLOSE_AUTH_TIMEOUT, in milliseconds. */
export const DEFAULT_AUTH_TIMEOUT_MS = 10_000;

/** Default flow-control window per stream and direction: unacknowledged DATA and WS payload bytes (1 MiB). */
export const DEFAULT_STREAM_WINDOW_BYTES = 1024 * 1024;
/** Default flow-control window per connection and direction, summed over its streams (16 MiB). */
export const DEFAULT_CONNECTION_WINDOW_BYTES = 16 * 1024 * 1024;
/** The feature a client lists in Auth `features` to ask for WindowUpdate flow control. */
export const FEATURE_FLOW_CONTROL = 'flow_control';

// ───────────────────────────── error codes and reasons ─────────────────────────────

/** AuthResult `error` values (exact). */
export const AUTH_ERROR_CODES = ['unauthorized', 'forbidden'] as const;
/** One of AUTH_ERROR_CODES. */
export type AuthErrorCode = (typeof AUTH_ERROR_CODES)[number];

/** TunnelError `error` values (exact). The connection stays open after one of these. */
export const TUNNEL_ERROR_CODES = [
  'invalid_subdomain',
  'subdomain_reserved',
  'subdomain_taken',
  'too_many_tunnels',
  'already_registered',
] as const;
/** One of TUNNEL_ERROR_CODES. */
export type TunnelErrorCode = (typeof TUNNEL_ERROR_CODES)[number];

/** GoAway `reason` values (exact). */
export const GO_AWAY_REASONS = ['shutdown', 'revoked', 'closed_by_owner', 'replaced'] as const;
/** One of GO_AWAY_REASONS. */
export type GoAwayReason = (typeof GO_AWAY_REASONS)[number];
/** The close code that follows each GoAway reason. */
export const GO_AWAY_CLOSE_CODES: Readonly<Record<GoAwayReason, number>> = {
  shutdown: CLOSE_GOING_AWAY,
  revoked: CLOSE_UNAUTHORIZED,
  closed_by_owner: CLOSE_CLOSED_BY_OWNER,
  replaced: CLOSE_REPLACED,
};

/** StreamError `error` the server answers with 504 instead of 502: the local service did not answer in time. */
export const STREAM_ERROR_ORIGIN_TIMEOUT = 'origin_timeout';

// ───────────────────────────── subdomains and header syntax ─────────────────────────────

/** Shortest subdomain label. */
export const SUBDOMAIN_MIN_LENGTH = 3;
/** Longest subdomain label (the DNS label limit). */
export const SUBDOMAIN_MAX_LENGTH = 63;
/** Names nobody may register, whatever the configuration adds. */
export const ALWAYS_RESERVED_SUBDOMAINS: readonly string[] = ['api', 'www'];

// First and last a letter or digit, 1–61 of [a-z0-9-] between: 3–63 in all. Lower case only: the
// server lower-cases Host before routing, so an upper-case name could never be reached.
const SUBDOMAIN_PATTERN = /^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/;

/** True when `name` is a syntactically valid subdomain: 3–63 of `[a-z0-9-]`, no hyphen at either end. Says nothing of reserved or taken names. */
export function isValidSubdomain(name: unknown): name is string {
  return typeof name === 'string' && SUBDOMAIN_PATTERN.test(name);
}

// RFC 9110 token (tchar+): header names and methods. Refusing anything else (space, colon, CR, LF)
// is what stops a hostile peer from smuggling a header or a request line through a name.
const TOKEN_PATTERN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// RFC 9110 field-value characters: HTAB, SP, VCHAR and obs-text. No CR, LF, NUL or other controls
// (header injection), and nothing above U+00FF, which fetch's Headers would throw on (a ByteString).
const FIELD_VALUE_PATTERN = /^[\t\x20-\x7e\x80-\xff]*$/;
// An origin-form request target: "/" then visible ASCII. Bun's URL parser has already
// percent-encoded anything else, and spaces or controls here would forge a request line.
const PATH_PATTERN = /^\/[\x21-\x7e]*$/;
// Machine-readable codes in server answers: snake_case, so a newer server's new code still parses.
const CODE_PATTERN = /^[a-z][a-z0-9_]{0,63}$/;

/** True when `name` is an HTTP token (RFC 9110 tchar+) of at most MAX_TOKEN_CHARS: a valid header name or method. */
export function isHttpToken(name: unknown): name is string {
  return typeof name === 'string' && name.length <= MAX_TOKEN_CHARS && TOKEN_PATTERN.test(name);
}

/** True when `value` is a valid HTTP field value: only HTAB, SP, visible ASCII and obs-text (U+0080–U+00FF); no CR, LF or NUL. */
export function isHeaderValue(value: unknown): value is string {
  return typeof value === 'string' && FIELD_VALUE_PATTERN.test(value);
}

// Hop-by-hop headers describe one connection, not the message (RFC 9110 §7.6.1): the visitor's
// connection to the server and the client's to the local service are different connections.
const HOP_BY_HOP_HEADERS = new Set(['connection', 'keep-alive', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

/** True for a header neither side relays: the hop-by-hop list and any `Proxy-*` (any case). */
export function isHopByHopHeader(name: string): boolean {
  const lower = name.toLowerCase();
  return HOP_BY_HOP_HEADERS.has(lower) || lower.startsWith('proxy-');
}

/**
 * Whether a response's `Content-Length` announces a body small enough to travel whole: the client
 * reads such a body before answering and sends it as one DATA frame carrying the FIN, and the server
 * waits a moment for that frame so it can answer with the body in one piece. Anything else streams.
 */
export function announcesWholeBody(contentLength: string | null | undefined): boolean {
  return contentLength != null && /^\d{1,5}$/.test(contentLength) && Number(contentLength) <= MAX_FRAME_PAYLOAD_BYTES;
}

/** The header names that `Connection` header values list: hop-by-hop too, for that one message (lower-cased). */
export function connectionOptions(values: Iterable<string>): Set<string> {
  const names = new Set<string>();
  for (const value of values) for (const token of value.split(',')) if (token.trim()) names.add(token.trim().toLowerCase());
  return names;
}

// ───────────────────────────── control messages: types ─────────────────────────────

/** One header as `[name, value]`; a list of them keeps order and repeats (every `Set-Cookie` apart). */
export type HeaderPair = [name: string, value: string];

/** Auth (client → server): the first message of every connection. */
export interface AuthData {
  api_key: string;
  /** The client's name and version, e.g. `expose/0.2.0`. */
  client?: string;
  /** Features the client asks for, e.g. `["flow_control"]`; unknown names are allowed (and not accepted). */
  features?: string[];
}
/** AuthResult (server → client). On success `features` lists those the server accepted. */
export type AuthResultData =
  | { success: true; user_id: string; error: null; features?: string[] }
  | { success: false; user_id: null; error: AuthErrorCode | (string & {}) };
/** RegisterTunnel (client → server). Decoded, `subdomain` is always present: null when it was omitted. */
export interface RegisterTunnelData {
  /** Omitted or null: the server generates a name. */
  subdomain?: string | null;
  local_port: number;
  /** From an earlier TunnelReady, to get the same subdomain back during the grace time. */
  resume_token?: string;
}
/** TunnelReady (server → client). */
export interface TunnelReadyData {
  subdomain: string;
  public_url: string;
  tunnel_id?: string;
  resume_token?: string;
  /** Requests in flight the server allows on this tunnel (0 is accepted and means no limit). */
  max_streams?: number;
  /** Flow-control window per stream in bytes, present when flow control is on. */
  window?: number;
}
/** TunnelError (server → client). The connection stays open so the client may try again. */
export interface TunnelErrorData {
  error: TunnelErrorCode | (string & {});
  message: string;
}
/** StreamOpen (server → client): a visitor's HTTP request. The body follows as DATA frames. */
export interface StreamOpenData {
  stream_id: number;
  method: string;
  /**
   * Path and query exactly as received, always starting with `/`. It may start with `//`: join it to
   * the local origin by concatenation, never by URL resolution, or `//evil.example/` would leave localhost.
   */
  path: string;
  headers: HeaderPair[];
}
/** StreamResponse (client → server): the local service's status and headers. The body follows as DATA frames. */
export interface StreamResponseData {
  stream_id: number;
  status: number;
  headers: HeaderPair[];
}
/** StreamClose (both): the sender is done with the stream and ignores what else arrives for it. */
export interface StreamCloseData {
  stream_id: number;
}
/** StreamError (both): before StreamResponse the visitor gets 502 (504 for `origin_timeout`); after it the response is cut. */
export interface StreamErrorData {
  stream_id: number;
  /** A code such as `origin_timeout`, or a short text such as `Connection refused`. */
  error: string;
}
/** WsUpgrade (server → client): a visitor's WebSocket upgrade request. */
export interface WsUpgradeData {
  stream_id: number;
  /** Path and query, as StreamOpen's (same caution about `//`). */
  path: string;
  headers: HeaderPair[];
}
/** WsUpgradeAccepted (client → server): the local WebSocket is open. */
export interface WsUpgradeAcceptedData {
  stream_id: number;
  /** The subprotocol the local server chose. */
  protocol?: string;
}
/** Heartbeat (both): empty; any frame counts as a sign of life, this one exists for idle connections. */
export type HeartbeatData = Record<string, never>;
/** WindowUpdate (both, only with `flow_control`): the receiver grants `bytes` more to a stream, or to the connection when `stream_id` is 0. */
export interface WindowUpdateData {
  stream_id: number;
  bytes: number;
}
/** GoAway (server → client): sent just before the server closes; the reason says whether to come back. */
export interface GoAwayData {
  reason: GoAwayReason | (string & {});
}

/** Auth control message. */
export type AuthMessage = { type: 'Auth'; data: AuthData };
/** AuthResult control message. */
export type AuthResultMessage = { type: 'AuthResult'; data: AuthResultData };
/** RegisterTunnel control message. */
export type RegisterTunnelMessage = { type: 'RegisterTunnel'; data: RegisterTunnelData };
/** TunnelReady control message. */
export type TunnelReadyMessage = { type: 'TunnelReady'; data: TunnelReadyData };
/** TunnelError control message. */
export type TunnelErrorMessage = { type: 'TunnelError'; data: TunnelErrorData };
/** StreamOpen control message. */
export type StreamOpenMessage = { type: 'StreamOpen'; data: StreamOpenData };
/** StreamResponse control message. */
export type StreamResponseMessage = { type: 'StreamResponse'; data: StreamResponseData };
/** StreamClose control message. */
export type StreamCloseMessage = { type: 'StreamClose'; data: StreamCloseData };
/** StreamError control message. */
export type StreamErrorMessage = { type: 'StreamError'; data: StreamErrorData };
/** WsUpgrade control message. */
export type WsUpgradeMessage = { type: 'WsUpgrade'; data: WsUpgradeData };
/** WsUpgradeAccepted control message. */
export type WsUpgradeAcceptedMessage = { type: 'WsUpgradeAccepted'; data: WsUpgradeAcceptedData };
/** Heartbeat control message. */
export type HeartbeatMessage = { type: 'Heartbeat'; data: HeartbeatData };
/** WindowUpdate control message. */
export type WindowUpdateMessage = { type: 'WindowUpdate'; data: WindowUpdateData };
/** GoAway control message. */
export type GoAwayMessage = { type: 'GoAway'; data: GoAwayData };

/** Every message a client may send, discriminated by `type`. */
export type ClientToServerMessage =
  | AuthMessage
  | RegisterTunnelMessage
  | StreamResponseMessage
  | StreamCloseMessage
  | StreamErrorMessage
  | WsUpgradeAcceptedMessage
  | HeartbeatMessage
  | WindowUpdateMessage;
/** Every message a server may send, discriminated by `type`. */
export type ServerToClientMessage =
  | AuthResultMessage
  | TunnelReadyMessage
  | TunnelErrorMessage
  | StreamOpenMessage
  | StreamCloseMessage
  | StreamErrorMessage
  | WsUpgradeMessage
  | HeartbeatMessage
  | WindowUpdateMessage
  | GoAwayMessage;
/** Any control message. */
export type ControlMessage = ClientToServerMessage | ServerToClientMessage;
/** Any control message type name. */
export type ControlType = ControlMessage['type'];

/** Which way a message travels; decoding checks the type is one that sender may send. */
export type Direction = 'client_to_server' | 'server_to_client';

/** Message types a client sends (exact). */
export const CLIENT_TO_SERVER_TYPES: readonly ClientToServerMessage['type'][] = [
  'Auth',
  'RegisterTunnel',
  'StreamResponse',
  'StreamClose',
  'StreamError',
  'WsUpgradeAccepted',
  'Heartbeat',
  'WindowUpdate',
];
/** Message types a server sends (exact). */
export const SERVER_TO_CLIENT_TYPES: readonly ServerToClientMessage['type'][] = [
  'AuthResult',
  'TunnelReady',
  'TunnelError',
  'StreamOpen',
  'StreamClose',
  'StreamError',
  'WsUpgrade',
  'Heartbeat',
  'WindowUpdate',
  'GoAway',
];

/**
 * What decodeControl makes of one text frame:
 * - `message`: a known type, every field checked; only known fields are kept.
 * - `unknown_type`: well-formed JSON with a `type` this version does not know. Ignore it after
 *   authentication (a newer peer's extension); before, it is a protocol error like any non-Auth.
 * - `protocol_error`: close the connection with CLOSE_PROTOCOL_ERROR; `error` says why (safe to log:
 *   it never quotes the peer's text).
 */
export type ControlDecodeResult<M extends ControlMessage = ControlMessage> =
  | { status: 'message'; message: M }
  | { status: 'unknown_type'; type: string }
  | { status: 'protocol_error'; error: string };

// ───────────────────────────── control messages: validation ─────────────────────────────

/** Thrown inside the validators only; decodeControl turns it into a result, encodeControl into a RangeError. */
class Invalid {
  constructor(readonly reason: string) {}
}

function fail(reason: string): never {
  throw new Invalid(reason);
}

type Fields = Record<string, unknown>;

function isObject(value: unknown): value is Fields {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// Own properties only: a field must never be found on Object.prototype (`data.constructor`).
function field(data: Fields, key: string): unknown {
  return Object.hasOwn(data, key) ? data[key] : undefined;
}

function requiredString(data: Fields, key: string, maxChars: number): string {
  const value = field(data, key);
  if (typeof value !== 'string') fail(`${key} must be a string`);
  if (value.length > maxChars) fail(`${key} is longer than ${maxChars} characters`);
  return value;
}

// Optional fields: absent and null both mean "not given" (JSON has no undefined).
function optionalString(data: Fields, key: string, maxChars: number): string | undefined {
  const value = field(data, key);
  return value === undefined || value === null ? undefined : requiredString(data, key, maxChars);
}

function requiredInteger(data: Fields, key: string, min: number, max: number): number {
  const value = field(data, key);
  // Number.isInteger refuses NaN, Infinity (from 1e400) and fractions; strings and booleans fail typeof.
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    fail(`${key} must be an integer from ${min} to ${max}`);
  }
  return value;
}

function optionalInteger(data: Fields, key: string, min: number, max: number): number | undefined {
  const value = field(data, key);
  return value === undefined || value === null ? undefined : requiredInteger(data, key, min, max);
}

function streamId(data: Fields): number {
  return requiredInteger(data, 'stream_id', 1, MAX_STREAM_ID);
}

function requiredToken(data: Fields, key: string): string {
  const value = field(data, key);
  if (!isHttpToken(value)) fail(`${key} must be an HTTP token of at most ${MAX_TOKEN_CHARS} characters`);
  return value;
}

function requiredCode(data: Fields, key: string): string {
  const value = field(data, key);
  if (typeof value !== 'string' || !CODE_PATTERN.test(value)) fail(`${key} must be a snake_case code`);
  return value;
}

function requiredPath(data: Fields): string {
  const value = requiredString(data, 'path', MAX_PATH_CHARS);
  if (!PATH_PATTERN.test(value)) fail('path must start with / and hold only visible ASCII');
  return value;
}

function requiredHeaders(data: Fields): HeaderPair[] {
  const value = field(data, 'headers');
  if (!Array.isArray(value)) fail('headers must be an array of [name, value] pairs');
  if (value.length > MAX_HEADER_PAIRS) fail(`headers has more than ${MAX_HEADER_PAIRS} pairs`);
  const pairs: HeaderPair[] = [];
  for (const pair of value) {
    if (!Array.isArray(pair) || pair.length !== 2) fail('each header must be a [name, value] pair');
    const [name, headerValue] = pair as unknown[];
    if (!isHttpToken(name)) fail('a header name is not an HTTP token');
    if (!isHeaderValue(headerValue)) fail('a header value holds a forbidden character (CR, LF, NUL, control or non-Latin-1)');
    pairs.push([name, headerValue]);
  }
  return pairs;
}

function optionalFeatures(data: Fields): string[] | undefined {
  const value = field(data, 'features');
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value)) fail('features must be an array of strings');
  if (value.length > MAX_FEATURES) fail(`features has more than ${MAX_FEATURES} entries`);
  for (const name of value) {
    if (typeof name !== 'string' || name.length === 0 || name.length > MAX_TOKEN_CHARS) {
      fail(`each feature must be a non-empty string of at most ${MAX_TOKEN_CHARS} characters`);
    }
  }
  return [...(value as string[])];
}

/** Builds an object from entries, leaving out the undefined ones (optional fields not given). */
function compact<T>(entries: Record<string, unknown>): T {
  const out: Fields = {};
  for (const key of Object.keys(entries)) if (entries[key] !== undefined) out[key] = entries[key];
  return out as T;
}

interface Rule {
  client: boolean;
  server: boolean;
  /** Checks `data` and returns a fresh object with the known fields only, or throws Invalid. */
  parse(data: Fields): object;
}

// One line per message type: who may send it and what its data must hold. Fresh output objects
// mean unknown fields (and anything an attacker hoped to smuggle through them) never go further.
const RULES = new Map<string, Rule>([
  [
    'Auth',
    {
      client: true,
      server: false,
      parse: (d) =>
        compact<AuthData>({
          api_key: requiredString(d, 'api_key', MAX_API_KEY_CHARS),
          client: optionalString(d, 'client', MAX_TOKEN_CHARS),
          features: optionalFeatures(d),
        }),
    },
  ],
  [
    'AuthResult',
    {
      client: false,
      server: true,
      parse: (d): AuthResultData => {
        const success = field(d, 'success');
        if (typeof success !== 'boolean') fail('success must be a boolean');
        const userId = field(d, 'user_id');
        const error = field(d, 'error');
        if (success) {
          if (error !== null) fail('error must be null on success');
          if (typeof userId !== 'string' || userId.length === 0 || userId.length > MAX_TOKEN_CHARS) {
            fail('user_id must be a non-empty string on success');
          }
          return compact<AuthResultData>({ success, user_id: userId, error: null, features: optionalFeatures(d) });
        }
        if (userId !== null) fail('user_id must be null on failure');
        return { success, user_id: null, error: requiredCode(d, 'error') };
      },
    },
  ],
  [
    'RegisterTunnel',
    {
      client: true,
      server: false,
      parse: (d) =>
        compact<RegisterTunnelData>({
          // Only the type and size are the protocol's business: a malformed name gets TunnelError
          // invalid_subdomain and the connection stays open, as the spec asks.
          subdomain: optionalString(d, 'subdomain', MAX_TOKEN_CHARS) ?? null,
          local_port: requiredInteger(d, 'local_port', 1, 65_535),
          resume_token: optionalString(d, 'resume_token', MAX_TEXT_CHARS),
        }),
    },
  ],
  [
    'TunnelReady',
    {
      client: false,
      server: true,
      parse: (d) =>
        compact<TunnelReadyData>({
          subdomain: requiredString(d, 'subdomain', MAX_TOKEN_CHARS),
          public_url: requiredString(d, 'public_url', MAX_TEXT_CHARS),
          tunnel_id: optionalString(d, 'tunnel_id', MAX_TOKEN_CHARS),
          resume_token: optionalString(d, 'resume_token', MAX_TEXT_CHARS),
          max_streams: optionalInteger(d, 'max_streams', 0, MAX_STREAM_ID),
          window: optionalInteger(d, 'window', 1, MAX_WINDOW_BYTES),
        }),
    },
  ],
  [
    'TunnelError',
    {
      client: false,
      server: true,
      parse: (d): TunnelErrorData => ({
        error: requiredCode(d, 'error'),
        message: requiredString(d, 'message', MAX_TEXT_CHARS),
      }),
    },
  ],
  [
    'StreamOpen',
    {
      client: false,
      server: true,
      parse: (d): StreamOpenData => ({
        stream_id: streamId(d),
        method: requiredToken(d, 'method'),
        path: requiredPath(d),
        headers: requiredHeaders(d),
      }),
    },
  ],
  [
    'StreamResponse',
    {
      client: true,
      server: false,
      parse: (d): StreamResponseData => ({
        stream_id: streamId(d),
        status: requiredInteger(d, 'status', 100, 599),
        headers: requiredHeaders(d),
      }),
    },
  ],
  ['StreamClose', { client: true, server: true, parse: (d): StreamCloseData => ({ stream_id: streamId(d) }) }],
  [
    'StreamError',
    {
      client: true,
      server: true,
      parse: (d): StreamErrorData => ({ stream_id: streamId(d), error: requiredString(d, 'error', MAX_TEXT_CHARS) }),
    },
  ],
  [
    'WsUpgrade',
    {
      client: false,
      server: true,
      parse: (d): WsUpgradeData => ({ stream_id: streamId(d), path: requiredPath(d), headers: requiredHeaders(d) }),
    },
  ],
  [
    'WsUpgradeAccepted',
    {
      client: true,
      server: false,
      parse: (d) => {
        const protocol = field(d, 'protocol');
        // Subprotocol names are tokens (RFC 6455 §4.1); the server echoes it in a response header.
        if (protocol !== undefined && protocol !== null && !isHttpToken(protocol)) fail('protocol must be an HTTP token');
        return compact<WsUpgradeAcceptedData>({ stream_id: streamId(d), protocol: protocol ?? undefined });
      },
    },
  ],
  ['Heartbeat', { client: true, server: true, parse: (): HeartbeatData => ({}) }],
  [
    'WindowUpdate',
    {
      client: true,
      server: true,
      parse: (d): WindowUpdateData => ({
        // 0 is the connection itself, so not streamId() here.
        stream_id: requiredInteger(d, 'stream_id', 0, MAX_STREAM_ID),
        // A zero grant is meaningless and, as in HTTP/2, treated as a broken peer.
        bytes: requiredInteger(d, 'bytes', 1, MAX_WINDOW_BYTES),
      }),
    },
  ],
  ['GoAway', { client: false, server: true, parse: (d): GoAwayData => ({ reason: requiredCode(d, 'reason') }) }],
]);

/** UTF-8 length of `text`, counting no further than `limit + 1` (a lone surrogate counts 3, as U+FFFD). */
function utf8ByteLengthUpTo(text: string, limit: number): number {
  let bytes = 0;
  for (let i = 0; i < text.length && bytes <= limit; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) bytes += 1;
    else if (unit < 0x800) bytes += 2;
    else if (unit >= 0xd800 && unit <= 0xdbff && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      bytes += 4;
      i++;
    } else bytes += 3;
  }
  return bytes;
}

/** True when `text`, as UTF-8, is larger than a control message may be. */
function isOversizedText(text: string): boolean {
  // One UTF-16 unit is 1 to 3 UTF-8 bytes, so the exact count is needed only in between.
  if (text.length > MAX_CONTROL_TEXT_BYTES) return true;
  if (text.length * 3 <= MAX_CONTROL_TEXT_BYTES) return false;
  return utf8ByteLengthUpTo(text, MAX_CONTROL_TEXT_BYTES) > MAX_CONTROL_TEXT_BYTES;
}

const PROTO_KEY = new Invalid('a __proto__ key is not allowed');

// JSON.parse makes "__proto__" an own property (no pollution by itself), but a consumer that
// spreads or Object.assign()s the value would then replace a prototype. No message needs that key.
function refuseProtoKey(key: string, value: unknown): unknown {
  if (key === '__proto__') throw PROTO_KEY;
  return value;
}

/**
 * Parses and checks one control text frame from an untrusted peer. Never throws. The type must be
 * one the sender (`direction`) may send, every required field present with the right JSON type and
 * range (ids positive u32 integers, status 100–599, headers `[token, field-value]` pairs, strings
 * bounded), and no `__proto__` key anywhere. Unknown fields are dropped; unknown types are reported
 * as `unknown_type`. Optional fields given as null come back absent, except RegisterTunnel's
 * `subdomain`, which is always present (null = generate one).
 */
export function decodeControl(text: string, direction: 'client_to_server'): ControlDecodeResult<ClientToServerMessage>;
export function decodeControl(text: string, direction: 'server_to_client'): ControlDecodeResult<ServerToClientMessage>;
export function decodeControl(text: string, direction: Direction): ControlDecodeResult;
export function decodeControl(text: string, direction: Direction): ControlDecodeResult {
  try {
    if (typeof text !== 'string') return protocolError('control message is not text');
    if (isOversizedText(text)) return protocolError(`control message is over ${MAX_CONTROL_TEXT_BYTES} bytes`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(text, refuseProtoKey);
    } catch (error) {
      // Also catches a RangeError from very deep nesting: still just malformed input.
      return protocolError(error instanceof Invalid ? error.reason : 'malformed JSON');
    }
    if (!isObject(parsed)) return protocolError('control message is not a JSON object');
    const type = field(parsed, 'type');
    if (typeof type !== 'string' || type.length === 0 || type.length > MAX_TYPE_CHARS) {
      return protocolError(`type must be a string of 1 to ${MAX_TYPE_CHARS} characters`);
    }
    // A Map, not an object lookup: "toString" or "__proto__" as a type must not find Object.prototype.
    const rule = RULES.get(type);
    if (rule === undefined) return { status: 'unknown_type', type };
    const fromClient = direction === 'client_to_server';
    if (fromClient ? !rule.client : !rule.server) {
      return protocolError(`${type} is never sent by the ${fromClient ? 'client' : 'server'}`);
    }
    const data = field(parsed, 'data');
    if (!isObject(data)) return protocolError(`${type}: data must be a JSON object`);
    try {
      return { status: 'message', message: { type, data: rule.parse(data) } as ControlMessage };
    } catch (error) {
      // `type` is one of our own names here, so quoting it is safe; the reason never quotes input.
      if (error instanceof Invalid) return protocolError(`${type}: ${error.reason}`);
      throw error;
    }
  } catch {
    // Unreachable by design; a backstop so that no input can ever throw out of the decoder.
    return protocolError('invalid control message');
  }
}

function protocolError(error: string): { status: 'protocol_error'; error: string } {
  return { status: 'protocol_error', error };
}

/**
 * Serialises a control message as its text frame, `{"type": ..., "data": ...}`. Throws a RangeError
 * when the message breaks a rule decodeControl enforces (e.g. a header value with CR/LF, a stream id
 * of 0) or the text would exceed MAX_CONTROL_TEXT_BYTES: sending it would make the peer close the
 * whole connection. The server builds StreamOpen from visitor input, so it should catch this and
 * answer that one visitor (400, 414 or 431) instead.
 */
export function encodeControl(msg: ControlMessage): string {
  const rule = RULES.get(msg.type);
  if (rule === undefined) throw new RangeError(`unknown control message type ${String(msg.type)}`);
  if (!isObject(msg.data)) throw new RangeError(`${msg.type}: data must be an object`);
  try {
    rule.parse(msg.data);
  } catch (error) {
    if (error instanceof Invalid) throw new RangeError(`${msg.type}: ${error.reason}`);
    throw error;
  }
  const text = JSON.stringify({ type: msg.type, data: msg.data });
  if (isOversizedText(text)) throw new RangeError(`${msg.type}: message is over ${MAX_CONTROL_TEXT_BYTES} bytes`);
  return text;
}

// ───────────────────────────── binary frames ─────────────────────────────

/** A decoded binary frame. `payload` is a view into the received bytes, not a copy: copy it before keeping it past the handler if the buffer is reused. */
export interface Frame {
  streamId: number;
  kind: FrameKind;
  flags: number;
  payload: Uint8Array;
}

/** What decodeFrame makes of one binary message: the frame, or why it is a protocol error. */
export type FrameDecodeResult = ({ ok: true } & Frame) | { ok: false; error: string };

const KNOWN_KINDS: ReadonlySet<number> = new Set(Object.values(FrameKind));
const EMPTY = new Uint8Array(0);

/** The payload limit of a kind: WebSocket control frames are at most 125 bytes, everything else 64 KiB. */
export function maxPayloadBytes(kind: FrameKind): number {
  return kind === FrameKind.WS_CLOSE || kind === FrameKind.WS_PING || kind === FrameKind.WS_PONG
    ? MAX_WS_CONTROL_PAYLOAD_BYTES
    : MAX_FRAME_PAYLOAD_BYTES;
}

function assertFrameFields(streamId: number, kind: number, flags: number): void {
  if (!Number.isInteger(streamId) || streamId < 1 || streamId > MAX_STREAM_ID) {
    throw new RangeError(`stream id must be an integer from 1 to ${MAX_STREAM_ID}, got ${streamId}`);
  }
  if (!KNOWN_KINDS.has(kind)) throw new RangeError(`unknown frame kind ${kind}`);
  if (!Number.isInteger(flags) || flags < 0 || (flags & ~KNOWN_FLAGS) !== 0) throw new RangeError(`unknown frame flags ${flags}`);
}

/**
 * Builds one binary frame: the 6-byte header then `payload`, in a single allocation. Throws a
 * RangeError on a stream id outside 1..2^32−1, an unknown kind or flag bit, or a payload over the
 * kind's limit (64 KiB; 125 bytes for WS_CLOSE, WS_PING and WS_PONG). Split bigger payloads with
 * splitIntoFrames.
 */
export function encodeFrame(streamId: number, kind: FrameKind, flags: number, payload: Uint8Array = EMPTY): Uint8Array {
  assertFrameFields(streamId, kind, flags);
  const limit = maxPayloadBytes(kind);
  if (payload.byteLength > limit) throw new RangeError(`frame payload of ${payload.byteLength} bytes is over ${limit}`);
  const frame = new Uint8Array(FRAME_HEADER_BYTES + payload.byteLength);
  // Big-endian u32; Uint8Array stores each value modulo 256.
  frame[0] = streamId >>> 24;
  frame[1] = streamId >>> 16;
  frame[2] = streamId >>> 8;
  frame[3] = streamId;
  frame[4] = kind;
  frame[5] = flags;
  frame.set(payload, FRAME_HEADER_BYTES);
  return frame;
}

/**
 * Reads one binary frame from an untrusted peer. Never throws and never copies: `payload` is a
 * subarray of `bytes`. Refuses frames shorter than the header, stream id 0, unknown kinds, unknown
 * flag bits, and payloads over the kind's limit. Whether the stream exists is the session's question
 * (a frame for an unknown stream is dropped, not an error).
 */
export function decodeFrame(bytes: Uint8Array | ArrayBuffer): FrameDecodeResult {
  const view = bytes instanceof Uint8Array ? bytes : bytes instanceof ArrayBuffer ? new Uint8Array(bytes) : undefined;
  if (view === undefined) return { ok: false, error: 'binary frame is not bytes' };
  if (view.byteLength < FRAME_HEADER_BYTES) {
    return { ok: false, error: `binary frame of ${view.byteLength} bytes is shorter than its ${FRAME_HEADER_BYTES}-byte header` };
  }
  const streamId = ((view[0]! << 24) | (view[1]! << 16) | (view[2]! << 8) | view[3]!) >>> 0;
  const kind = view[4]!;
  const flags = view[5]!;
  if (streamId === 0) return { ok: false, error: 'binary frame for stream 0' };
  if (!KNOWN_KINDS.has(kind)) return { ok: false, error: `unknown frame kind ${kind}` };
  if ((flags & ~KNOWN_FLAGS) !== 0) return { ok: false, error: `unknown frame flags ${flags}` };
  const payloadBytes = view.byteLength - FRAME_HEADER_BYTES;
  const limit = maxPayloadBytes(kind as FrameKind);
  if (payloadBytes > limit) return { ok: false, error: `frame payload of ${payloadBytes} bytes is over ${limit}` };
  return { ok: true, streamId, kind: kind as FrameKind, flags, payload: view.subarray(FRAME_HEADER_BYTES) };
}

/** Options of splitIntoFrames. */
export interface SplitOptions {
  /** Set FIN on the last frame (default true). With false and an empty payload, no frame at all. */
  fin?: boolean;
  /** Largest piece, 1..MAX_FRAME_PAYLOAD_BYTES (default 64 KiB): smaller to fit what a flow-control window allows. */
  maxPieceBytes?: number;
}

/**
 * Splits `payload` into frames of `kind` (DATA, WS_TEXT or WS_BINARY) of at most `maxPieceBytes`
 * each, FIN on the last when `fin`. An empty payload with `fin` is one empty frame with FIN (how a
 * body-less request or 204 ends). Lazy: each frame is built when asked for, so a sender under
 * backpressure holds one piece at a time, not a copy of the whole buffer. Arguments are checked at
 * the call (RangeError), not on the first iteration.
 */
export function splitIntoFrames(
  streamId: number,
  kind: SplittableKind,
  payload: Uint8Array,
  options: SplitOptions = {},
): Generator<Uint8Array, void, undefined> {
  const fin = options.fin ?? true;
  const maxPiece = options.maxPieceBytes ?? MAX_FRAME_PAYLOAD_BYTES;
  if (kind !== FrameKind.DATA && kind !== FrameKind.WS_TEXT && kind !== FrameKind.WS_BINARY) {
    throw new RangeError(`frame kind ${kind} cannot be split`);
  }
  if (!Number.isInteger(maxPiece) || maxPiece < 1 || maxPiece > MAX_FRAME_PAYLOAD_BYTES) {
    throw new RangeError(`maxPieceBytes must be an integer from 1 to ${MAX_FRAME_PAYLOAD_BYTES}`);
  }
  assertFrameFields(streamId, kind, 0);
  return pieces(streamId, kind, payload, fin, maxPiece);
}

function* pieces(streamId: number, kind: SplittableKind, payload: Uint8Array, fin: boolean, maxPiece: number) {
  if (payload.byteLength === 0) {
    if (fin) yield encodeFrame(streamId, kind, FLAG_FIN, EMPTY);
    return;
  }
  for (let start = 0; start < payload.byteLength; start += maxPiece) {
    const end = Math.min(start + maxPiece, payload.byteLength);
    yield encodeFrame(streamId, kind, fin && end === payload.byteLength ? FLAG_FIN : 0, payload.subarray(start, end));
  }
}

// ───────────────────────────── WebSocket close payloads ─────────────────────────────

/**
 * True for a close code an endpoint may put on the wire (RFC 6455 §7.4): 1000–1003, 1007–1014 and
 * 3000–4999. 1004, 1005, 1006 and 1015 are reserved for reporting and must never be sent.
 */
export function isSendableCloseCode(code: number): boolean {
  return (
    Number.isInteger(code) &&
    ((code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999))
  );
}

const utf8Encoder = new TextEncoder();
// fatal: invalid UTF-8 is refused rather than replaced, as a WebSocket endpoint must (RFC 6455 §8.1).
const strictUtf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Builds a WS_CLOSE payload: empty when `code` is undefined (a close without a status, which the
 * other side reports as 1005), else the u16 code big-endian + the UTF-8 reason. Throws a RangeError
 * on a code that may not be sent, a reason without a code, a reason with lone surrogates, or a reason
 * over MAX_WS_CLOSE_REASON_BYTES.
 */
export function encodeWsClose(code?: number, reason = ''): Uint8Array {
  if (code === undefined) {
    if (reason !== '') throw new RangeError('a close reason needs a close code');
    return new Uint8Array(0);
  }
  if (!isSendableCloseCode(code)) throw new RangeError(`close code ${code} may not be sent`);
  if (!reason.isWellFormed()) throw new RangeError('close reason is not well-formed Unicode');
  const reasonBytes = utf8Encoder.encode(reason);
  if (reasonBytes.byteLength > MAX_WS_CLOSE_REASON_BYTES) {
    throw new RangeError(`close reason of ${reasonBytes.byteLength} bytes is over ${MAX_WS_CLOSE_REASON_BYTES}`);
  }
  const payload = new Uint8Array(2 + reasonBytes.byteLength);
  payload[0] = code >>> 8;
  payload[1] = code;
  payload.set(reasonBytes, 2);
  return payload;
}

/** A decoded WS_CLOSE payload (`code` null: closed without a status), or why it is a protocol error. */
export type WsCloseDecodeResult = { ok: true; code: number | null; reason: string } | { ok: false; error: string };

/**
 * Reads a WS_CLOSE payload from an untrusted peer. Never throws. Refuses a 1-byte payload, more than
 * 125 bytes, a code that may not be sent, and a reason that is not valid UTF-8.
 */
export function decodeWsClose(payload: Uint8Array): WsCloseDecodeResult {
  if (!(payload instanceof Uint8Array)) return { ok: false, error: 'close payload is not bytes' };
  if (payload.byteLength === 0) return { ok: true, code: null, reason: '' };
  if (payload.byteLength === 1) return { ok: false, error: 'close payload of 1 byte' };
  if (payload.byteLength > MAX_WS_CONTROL_PAYLOAD_BYTES) {
    return { ok: false, error: `close payload of ${payload.byteLength} bytes is over ${MAX_WS_CONTROL_PAYLOAD_BYTES}` };
  }
  const code = (payload[0]! << 8) | payload[1]!;
  if (!isSendableCloseCode(code)) return { ok: false, error: `close code ${code} may not be sent` };
  try {
    return { ok: true, code, reason: strictUtf8Decoder.decode(payload.subarray(2)) };
  } catch {
    return { ok: false, error: 'close reason is not valid UTF-8' };
  }
}
