/** The tunnel wire protocol: control-message and frame round trips, a hostile-input table, and properties that hold for all inputs. */
import { describe, expect, it } from 'bun:test';
import fc from 'fast-check';
import {
  CLIENT_TO_SERVER_TYPES,
  CLOSE_AUTH_TIMEOUT,
  CLOSE_CLOSED_BY_OWNER,
  CLOSE_FORBIDDEN,
  CLOSE_GOING_AWAY,
  CLOSE_PROTOCOL_ERROR,
  CLOSE_REPLACED,
  CLOSE_UNAUTHORIZED,
  DEFAULT_AUTH_TIMEOUT_MS,
  DEFAULT_CONNECTION_WINDOW_BYTES,
  DEFAULT_HEARTBEAT_INTERVAL_MS,
  DEFAULT_PEER_DEAD_AFTER_MS,
  DEFAULT_STREAM_WINDOW_BYTES,
  FEATURE_FLOW_CONTROL,
  FLAG_FIN,
  FRAME_HEADER_BYTES,
  FrameKind,
  GO_AWAY_CLOSE_CODES,
  MAX_CONTROL_TEXT_BYTES,
  MAX_FRAME_PAYLOAD_BYTES,
  MAX_HEADER_PAIRS,
  MAX_STREAM_ID,
  MAX_WS_CLOSE_REASON_BYTES,
  NO_RECONNECT_CLOSE_CODES,
  SERVER_TO_CLIENT_TYPES,
  decodeControl,
  decodeFrame,
  decodeWsClose,
  encodeControl,
  encodeFrame,
  encodeWsClose,
  isHeaderValue,
  isHttpToken,
  isSendableCloseCode,
  isValidSubdomain,
  splitIntoFrames,
  type ControlMessage,
  type Direction,
  type FrameKind as FrameKindValue,
  type SplittableKind,
} from '../../src/tunnel/protocol.ts';

/** Runs per property; FUZZ_RUNS raises it for a deeper search. */
const NUM_RUNS = Number(process.env.FUZZ_RUNS ?? 300);
const TIMEOUT_MS = 60_000;

const ALL_KINDS: FrameKindValue[] = [0, 2, 3, 4, 5, 6];
const SMALL_KINDS: FrameKindValue[] = [FrameKind.WS_CLOSE, FrameKind.WS_PING, FrameKind.WS_PONG];

/** Both directions a message type may travel in. */
function directionsOf(type: string): Direction[] {
  const out: Direction[] = [];
  if ((CLIENT_TO_SERVER_TYPES as readonly string[]).includes(type)) out.push('client_to_server');
  if ((SERVER_TO_CLIENT_TYPES as readonly string[]).includes(type)) out.push('server_to_client');
  return out;
}

/** Decodes and insists on a message, for tests that expect one. */
function decoded(text: string, direction: Direction): ControlMessage {
  const result = decodeControl(text, direction);
  if (result.status !== 'message') throw new Error(`expected a message, got ${JSON.stringify(result)}`);
  return result.message;
}

/** A JSON control text with `data`, as a hostile peer might write it. */
const raw = (type: string, data: unknown): string => JSON.stringify({ type, data });

/** Every control message type, with all optional fields and with none. */
const SAMPLES: ControlMessage[] = [
  { type: 'Auth', data: { api_key: 'exp_k1_0123456789abcdef' } },
  { type: 'Auth', data: { api_key: 'exp_k1_x', client: 'expose/0.2.0', features: [FEATURE_FLOW_CONTROL, 'future_thing'] } },
  { type: 'AuthResult', data: { success: true, user_id: '0190f3a2-1111-7000-8000-000000000001', error: null } },
  { type: 'AuthResult', data: { success: true, user_id: 'u1', error: null, features: ['flow_control'] } },
  { type: 'AuthResult', data: { success: false, user_id: null, error: 'unauthorized' } },
  { type: 'AuthResult', data: { success: false, user_id: null, error: 'forbidden' } },
  { type: 'RegisterTunnel', data: { subdomain: null, local_port: 3000 } },
  { type: 'RegisterTunnel', data: { subdomain: 'myapp', local_port: 65_535, resume_token: 'rt_abc' } },
  { type: 'TunnelReady', data: { subdomain: 'myapp', public_url: 'http://myapp.localhost:3000' } },
  {
    type: 'TunnelReady',
    data: {
      subdomain: 'brave-otter-3f9a',
      public_url: 'https://brave-otter-3f9a.expose.example.com',
      tunnel_id: 't_1',
      resume_token: 'rt_1',
      max_streams: 256,
      window: DEFAULT_STREAM_WINDOW_BYTES,
    },
  },
  ...(['invalid_subdomain', 'subdomain_reserved', 'subdomain_taken', 'too_many_tunnels', 'already_registered'] as const).map(
    (error): ControlMessage => ({ type: 'TunnelError', data: { error, message: 'Try another name' } }),
  ),
  {
    type: 'StreamOpen',
    data: {
      stream_id: 1,
      method: 'POST',
      path: '/upload?x=1&y=%20z',
      headers: [
        ['Host', 'myapp.localhost:3000'],
        ['Cookie', 'a=1'],
        ['Cookie', 'b=2'],
        ['X-Empty', ''],
        ['X-Latin1', 'caf\u00e9\tok'],
      ],
    },
  },
  { type: 'StreamOpen', data: { stream_id: MAX_STREAM_ID, method: 'GET', path: '/', headers: [] } },
  {
    type: 'StreamResponse',
    data: {
      stream_id: 3,
      status: 200,
      headers: [
        ['Set-Cookie', 'a=1; Path=/'],
        ['Set-Cookie', 'b=2; HttpOnly'],
        ['content-encoding', 'gzip'],
      ],
    },
  },
  { type: 'StreamResponse', data: { stream_id: 5, status: 100, headers: [] } },
  { type: 'StreamResponse', data: { stream_id: 5, status: 599, headers: [] } },
  { type: 'StreamClose', data: { stream_id: 7 } },
  { type: 'StreamError', data: { stream_id: 9, error: 'Connection refused' } },
  { type: 'StreamError', data: { stream_id: 9, error: 'origin_timeout' } },
  { type: 'WsUpgrade', data: { stream_id: 11, path: '/socket?room=1', headers: [['Sec-WebSocket-Protocol', 'chat, superchat']] } },
  { type: 'WsUpgradeAccepted', data: { stream_id: 11 } },
  { type: 'WsUpgradeAccepted', data: { stream_id: 11, protocol: 'chat' } },
  { type: 'Heartbeat', data: {} },
  { type: 'WindowUpdate', data: { stream_id: 0, bytes: DEFAULT_CONNECTION_WINDOW_BYTES } },
  { type: 'WindowUpdate', data: { stream_id: 13, bytes: 1 } },
  ...(['shutdown', 'revoked', 'closed_by_owner', 'replaced'] as const).map(
    (reason): ControlMessage => ({ type: 'GoAway', data: { reason } }),
  ),
];

describe('constants', () => {
  it('match the contract', () => {
    expect(FRAME_HEADER_BYTES).toBe(6);
    expect(MAX_FRAME_PAYLOAD_BYTES).toBe(65_536);
    expect(MAX_CONTROL_TEXT_BYTES).toBe(65_536);
    expect(FrameKind).toEqual({ DATA: 0, WS_TEXT: 2, WS_BINARY: 3, WS_CLOSE: 4, WS_PING: 5, WS_PONG: 6 });
    expect(FLAG_FIN).toBe(1);
    expect([CLOSE_UNAUTHORIZED, CLOSE_PROTOCOL_ERROR, CLOSE_FORBIDDEN, CLOSE_AUTH_TIMEOUT]).toEqual([4001, 4002, 4003, 4008]);
    expect([CLOSE_REPLACED, CLOSE_CLOSED_BY_OWNER, CLOSE_GOING_AWAY]).toEqual([4009, 4010, 1001]);
    expect([...NO_RECONNECT_CLOSE_CODES].sort()).toEqual([4001, 4003, 4010]);
    expect(GO_AWAY_CLOSE_CODES).toEqual({ shutdown: 1001, revoked: 4001, closed_by_owner: 4010, replaced: 4009 });
    expect([DEFAULT_HEARTBEAT_INTERVAL_MS, DEFAULT_PEER_DEAD_AFTER_MS, DEFAULT_AUTH_TIMEOUT_MS]).toEqual([30_000, 45_000, 10_000]);
    expect([DEFAULT_STREAM_WINDOW_BYTES, DEFAULT_CONNECTION_WINDOW_BYTES]).toEqual([1_048_576, 16_777_216]);
    expect(FEATURE_FLOW_CONTROL).toBe('flow_control');
  });
});

describe('isValidSubdomain', () => {
  it.each(['abc', 'my-app', 'a1b', 'brave-otter-3f9a', '123', 'a--b', 'x'.repeat(63)])('accepts %p', (name) => {
    expect(isValidSubdomain(name)).toBe(true);
  });
  it.each(['ab', '', 'x'.repeat(64), '-abc', 'abc-', 'MyApp', 'my_app', 'my.app', 'a b', 'café', 'abc\n', ' abc', 42, null])(
    'refuses %p',
    (name) => {
      expect(isValidSubdomain(name)).toBe(false);
    },
  );
});

describe('header syntax', () => {
  it('takes tokens as names and refuses separators and controls', () => {
    expect(isHttpToken('X-Forwarded-For')).toBe(true);
    expect(isHttpToken("!#$%&'*+-.^_`|~")).toBe(true);
    for (const bad of ['', 'X Y', 'X:Y', ':authority', 'X\r\nY', 'X\u0000', 'é', 'X(1)']) expect(isHttpToken(bad)).toBe(false);
  });
  it('takes field values with tabs and Latin-1, refuses CR, LF, NUL, controls and wider characters', () => {
    expect(isHeaderValue('')).toBe(true);
    expect(isHeaderValue('a\tb c\u00ff')).toBe(true);
    for (const bad of ['a\rb', 'a\nb', 'a\u0000b', 'a\u0001b', 'a\u007fb', '\u0100', '😀']) expect(isHeaderValue(bad)).toBe(false);
  });
});

describe('control messages', () => {
  it('has a sample of every type in both directions it travels', () => {
    const covered = new Set(SAMPLES.map((m) => m.type));
    expect([...covered].sort()).toEqual([...new Set([...CLIENT_TO_SERVER_TYPES, ...SERVER_TO_CLIENT_TYPES])].sort());
  });

  it.each(SAMPLES.map((m) => [m.type, m] as const))('round-trips %s', (_type, message) => {
    const text = encodeControl(message);
    expect(JSON.parse(text)).toEqual({ type: message.type, data: message.data });
    for (const direction of directionsOf(message.type)) expect(decoded(text, direction)).toStrictEqual(message);
  });

  it('refuses a known type from the side that never sends it', () => {
    for (const message of SAMPLES) {
      const wrong: Direction[] = (['client_to_server', 'server_to_client'] as const).filter(
        (d) => !directionsOf(message.type).includes(d),
      );
      for (const direction of wrong) {
        expect(decodeControl(encodeControl(message), direction).status).toBe('protocol_error');
      }
    }
  });

  it('reports an unknown type, whatever its data, so it can be ignored after auth', () => {
    for (const text of ['{"type":"FutureThing","data":{"x":[1,{"y":2}]}}', '{"type":"Later"}', '{"type":"toString","data":{}}']) {
      const result = decodeControl(text, 'client_to_server');
      expect(result.status).toBe('unknown_type');
      if (result.status === 'unknown_type') expect(result.type).toBe(JSON.parse(text).type);
    }
  });

  it('keeps only known fields and ignores extensions it does not know', () => {
    const text = raw('StreamClose', { stream_id: 3, extra: { nested: true }, constructor: 'x' });
    expect(decoded(text, 'client_to_server')).toEqual({ type: 'StreamClose', data: { stream_id: 3 } });
  });

  it('reads a null optional field as absent, and an omitted subdomain as null', () => {
    expect(decoded(raw('Auth', { api_key: 'k', client: null, features: null }), 'client_to_server')).toStrictEqual({
      type: 'Auth',
      data: { api_key: 'k' },
    });
    expect(decoded(raw('RegisterTunnel', { local_port: 8080 }), 'client_to_server')).toStrictEqual({
      type: 'RegisterTunnel',
      data: { subdomain: null, local_port: 8080 },
    });
  });

  it('lets the session judge subdomain syntax (TunnelError, not a protocol error)', () => {
    expect(decoded(raw('RegisterTunnel', { subdomain: '-Bad_Name-', local_port: 1 }), 'client_to_server')).toEqual({
      type: 'RegisterTunnel',
      data: { subdomain: '-Bad_Name-', local_port: 1 },
    });
  });

  it('accepts a message of exactly 64 KiB and refuses one byte more, counting UTF-8 bytes', () => {
    const sized = (bytes: number, unit: string, unitBytes: number) => {
      const base = raw('Future', { pad: '' });
      return raw('Future', { pad: unit.repeat((bytes - base.length) / unitBytes) });
    };
    expect(Buffer.byteLength(sized(65_536, 'a', 1))).toBe(65_536);
    expect(decodeControl(sized(65_536, 'a', 1), 'client_to_server').status).toBe('unknown_type');
    expect(decodeControl(sized(65_537, 'a', 1), 'client_to_server').status).toBe('protocol_error');
    // 'é' is 1 UTF-16 unit but 2 UTF-8 bytes: under 64 Ki characters, over 64 KiB.
    const wide = sized(65_538, 'é', 2);
    expect(wide.length).toBeLessThan(65_536);
    expect(decodeControl(wide, 'client_to_server').status).toBe('protocol_error');
  });

  describe('from a hostile peer', () => {
    const big = (n: number) => Array.from({ length: n }, (_, i) => [`X-${i}`, 'v']);
    const HOSTILE: [name: string, text: string, direction: Direction][] = [
      ['empty text', '', 'client_to_server'],
      ['malformed JSON', '{"type":"Auth","data":{', 'client_to_server'],
      ['trailing garbage', '{"type":"Heartbeat","data":{}} x', 'client_to_server'],
      ['a JSON string', '"Auth"', 'client_to_server'],
      ['a JSON array', '[{"type":"Auth"}]', 'client_to_server'],
      ['null', 'null', 'client_to_server'],
      ['no type', '{"data":{}}', 'client_to_server'],
      ['a numeric type', '{"type":1,"data":{}}', 'client_to_server'],
      ['an empty type', '{"type":"","data":{}}', 'client_to_server'],
      ['a 65-character type', raw('X'.repeat(65), {}), 'client_to_server'],
      ['missing data', '{"type":"Heartbeat"}', 'client_to_server'],
      ['data null', '{"type":"Heartbeat","data":null}', 'client_to_server'],
      ['data an array', '{"type":"Heartbeat","data":[]}', 'client_to_server'],
      ['Auth without api_key', raw('Auth', {}), 'client_to_server'],
      ['Auth with a numeric api_key', raw('Auth', { api_key: 42 }), 'client_to_server'],
      ['Auth with an enormous api_key', raw('Auth', { api_key: 'k'.repeat(8193) }), 'client_to_server'],
      ['Auth with features not an array', raw('Auth', { api_key: 'k', features: 'flow_control' }), 'client_to_server'],
      ['Auth with a numeric feature', raw('Auth', { api_key: 'k', features: [1] }), 'client_to_server'],
      ['Auth with 33 features', raw('Auth', { api_key: 'k', features: Array(33).fill('f') }), 'client_to_server'],
      ['__proto__ in data', '{"type":"Auth","data":{"api_key":"k","__proto__":{"polluted":true}}}', 'client_to_server'],
      ['__proto__ at the top', '{"__proto__":{"polluted":true},"type":"Heartbeat","data":{}}', 'client_to_server'],
      ['__proto__ spelt with escapes', '{"type":"Heartbeat","data":{"\\u005f_proto__":{"polluted":true}}}', 'client_to_server'],
      ['__proto__ in an unknown type', '{"type":"Future","data":{"a":[{"__proto__":{}}]}}', 'client_to_server'],
      ['RegisterTunnel without local_port', raw('RegisterTunnel', { subdomain: 'abc' }), 'client_to_server'],
      ['RegisterTunnel port 0', raw('RegisterTunnel', { local_port: 0 }), 'client_to_server'],
      ['RegisterTunnel port 65536', raw('RegisterTunnel', { local_port: 65_536 }), 'client_to_server'],
      ['RegisterTunnel port as a string', raw('RegisterTunnel', { local_port: '3000' }), 'client_to_server'],
      ['RegisterTunnel numeric subdomain', raw('RegisterTunnel', { subdomain: 5, local_port: 3000 }), 'client_to_server'],
      ['StreamResponse without stream_id', raw('StreamResponse', { status: 200, headers: [] }), 'client_to_server'],
      ['stream id 0', raw('StreamClose', { stream_id: 0 }), 'client_to_server'],
      ['negative stream id', raw('StreamClose', { stream_id: -1 }), 'client_to_server'],
      ['fractional stream id', raw('StreamClose', { stream_id: 1.5 }), 'client_to_server'],
      ['stream id 2^32', raw('StreamClose', { stream_id: 2 ** 32 }), 'client_to_server'],
      ['huge stream id', '{"type":"StreamClose","data":{"stream_id":1e400}}', 'client_to_server'],
      ['stream id as a string', raw('StreamClose', { stream_id: '1' }), 'client_to_server'],
      ['stream id true', raw('StreamClose', { stream_id: true }), 'client_to_server'],
      ['status 99', raw('StreamResponse', { stream_id: 1, status: 99, headers: [] }), 'client_to_server'],
      ['status 600', raw('StreamResponse', { stream_id: 1, status: 600, headers: [] }), 'client_to_server'],
      ['status 200.5', raw('StreamResponse', { stream_id: 1, status: 200.5, headers: [] }), 'client_to_server'],
      ['headers an object', raw('StreamResponse', { stream_id: 1, status: 200, headers: { a: 'b' } }), 'client_to_server'],
      ['a header triple', raw('StreamResponse', { stream_id: 1, status: 200, headers: [['a', 'b', 'c']] }), 'client_to_server'],
      ['a numeric header value', raw('StreamResponse', { stream_id: 1, status: 200, headers: [['a', 1]] }), 'client_to_server'],
      ['CRLF in a header value', raw('StreamResponse', { stream_id: 1, status: 200, headers: [['X', 'a\r\nSet-Cookie: s=1']] }), 'client_to_server'],
      ['LF in a header value', raw('StreamResponse', { stream_id: 1, status: 200, headers: [['X', 'a\nb']] }), 'client_to_server'],
      ['NUL in a header value', raw('StreamResponse', { stream_id: 1, status: 200, headers: [['X', 'a\u0000b']] }), 'client_to_server'],
      ['CRLF in a header name', raw('StreamResponse', { stream_id: 1, status: 200, headers: [['X\r\nY', 'a']] }), 'client_to_server'],
      ['a space in a header name', raw('StreamResponse', { stream_id: 1, status: 200, headers: [['X Y', 'a']] }), 'client_to_server'],
      ['an empty header name', raw('StreamResponse', { stream_id: 1, status: 200, headers: [['', 'a']] }), 'client_to_server'],
      ['an emoji header value', raw('StreamResponse', { stream_id: 1, status: 200, headers: [['X', '😀']] }), 'client_to_server'],
      ['too many headers', raw('StreamResponse', { stream_id: 1, status: 200, headers: big(MAX_HEADER_PAIRS + 1) }), 'client_to_server'],
      ['WsUpgradeAccepted with a bad protocol', raw('WsUpgradeAccepted', { stream_id: 1, protocol: 'a b' }), 'client_to_server'],
      ['WindowUpdate of 0 bytes', raw('WindowUpdate', { stream_id: 0, bytes: 0 }), 'client_to_server'],
      ['WindowUpdate of 2^31 bytes', raw('WindowUpdate', { stream_id: 0, bytes: 2 ** 31 }), 'client_to_server'],
      ['WindowUpdate for stream -1', raw('WindowUpdate', { stream_id: -1, bytes: 1 }), 'client_to_server'],
      ['StreamError without error', raw('StreamError', { stream_id: 1 }), 'client_to_server'],
      ['an oversized text', raw('Future', { pad: 'x'.repeat(MAX_CONTROL_TEXT_BYTES) }), 'client_to_server'],
      ['deep nesting', '['.repeat(60_000) + ']'.repeat(5_000), 'client_to_server'],
      ['balanced deep nesting', `{"type":"Future","data":${'['.repeat(30_000)}${']'.repeat(30_000)}}`, 'client_to_server'],
      ['StreamOpen method with a space', raw('StreamOpen', { stream_id: 1, method: 'GET /x', path: '/', headers: [] }), 'server_to_client'],
      ['StreamOpen path without a slash', raw('StreamOpen', { stream_id: 1, method: 'GET', path: 'x', headers: [] }), 'server_to_client'],
      ['StreamOpen path with a space', raw('StreamOpen', { stream_id: 1, method: 'GET', path: '/a b', headers: [] }), 'server_to_client'],
      ['StreamOpen path with CRLF', raw('StreamOpen', { stream_id: 1, method: 'GET', path: '/a\r\nX: y', headers: [] }), 'server_to_client'],
      ['AuthResult success with an error', raw('AuthResult', { success: true, user_id: 'u', error: 'forbidden' }), 'server_to_client'],
      ['AuthResult success without user_id', raw('AuthResult', { success: true, user_id: null, error: null }), 'server_to_client'],
      ['AuthResult failure with a user_id', raw('AuthResult', { success: false, user_id: 'u', error: 'unauthorized' }), 'server_to_client'],
      ['AuthResult failure without error', raw('AuthResult', { success: false, user_id: null, error: null }), 'server_to_client'],
      ['AuthResult success as a string', raw('AuthResult', { success: 'true', user_id: 'u', error: null }), 'server_to_client'],
      ['TunnelError code with spaces', raw('TunnelError', { error: 'Subdomain taken', message: 'x' }), 'server_to_client'],
      ['TunnelReady window 0', raw('TunnelReady', { subdomain: 'a', public_url: 'u', window: 0 }), 'server_to_client'],
      ['GoAway without reason', raw('GoAway', {}), 'server_to_client'],
      ['TunnelReady from the client', raw('TunnelReady', { subdomain: 'abc', public_url: 'u' }), 'client_to_server'],
      ['Auth from the server', raw('Auth', { api_key: 'k' }), 'server_to_client'],
    ];

    it.each(HOSTILE)('refuses %s as a protocol error', (_name, text, direction) => {
      let result: ReturnType<typeof decodeControl> | undefined;
      expect(() => {
        result = decodeControl(text, direction);
      }).not.toThrow();
      expect(result?.status).toBe('protocol_error');
      if (result?.status === 'protocol_error') expect(result.error.length).toBeGreaterThan(0);
    });

    it('never pollutes Object.prototype', () => {
      decodeControl('{"type":"Auth","data":{"api_key":"k","__proto__":{"polluted":true}}}', 'client_to_server');
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    });

    it('never quotes the peer text in its reason', () => {
      const result = decodeControl(raw('StreamResponse', { stream_id: 1, status: 200, headers: [['X', 'SECRET\r\n']] }), 'client_to_server');
      expect(result.status === 'protocol_error' && !result.error.includes('SECRET')).toBe(true);
    });
  });

  describe('encodeControl', () => {
    it.each([
      ['a CRLF header value', { type: 'StreamOpen', data: { stream_id: 1, method: 'GET', path: '/', headers: [['X', 'a\r\nb']] } }],
      ['stream id 0', { type: 'StreamClose', data: { stream_id: 0 } }],
      ['an unknown type', { type: 'Nope', data: {} }],
      ['a message over 64 KiB', { type: 'StreamOpen', data: { stream_id: 1, method: 'GET', path: '/', headers: [['X', 'v'.repeat(MAX_CONTROL_TEXT_BYTES)]] } }],
    ])('throws a RangeError on %s, so the peer never sees it', (_name, message) => {
      expect(() => encodeControl(message as ControlMessage)).toThrow(RangeError);
    });
  });
});

describe('binary frames', () => {
  it.each(ALL_KINDS.flatMap((kind) => [0, FLAG_FIN].map((flags) => [kind, flags] as const)))(
    'round-trips kind %d with flags %d',
    (kind, flags) => {
      const payload = new Uint8Array(SMALL_KINDS.includes(kind) ? 125 : 1000).map((_, i) => i * 7);
      const frame = encodeFrame(0x0102_0304, kind, flags, payload);
      expect(frame.byteLength).toBe(FRAME_HEADER_BYTES + payload.byteLength);
      expect([...frame.subarray(0, 6)]).toEqual([1, 2, 3, 4, kind, flags]);
      const result = decodeFrame(frame);
      expect(result).toEqual({ ok: true, streamId: 0x0102_0304, kind, flags, payload });
    },
  );

  it('decodes the largest stream id and payload, and an empty DATA with FIN', () => {
    const payload = new Uint8Array(MAX_FRAME_PAYLOAD_BYTES).fill(9);
    const big = decodeFrame(encodeFrame(MAX_STREAM_ID, FrameKind.DATA, 0, payload));
    expect(big.ok && big.streamId === MAX_STREAM_ID && big.payload.byteLength === MAX_FRAME_PAYLOAD_BYTES).toBe(true);
    expect(decodeFrame(encodeFrame(1, FrameKind.DATA, FLAG_FIN))).toEqual({
      ok: true,
      streamId: 1,
      kind: FrameKind.DATA,
      flags: FLAG_FIN,
      payload: new Uint8Array(0),
    });
  });

  it('gives the payload as a view of the received bytes, not a copy', () => {
    const frame = encodeFrame(5, FrameKind.WS_BINARY, FLAG_FIN, new Uint8Array([1, 2, 3]));
    const result = decodeFrame(frame);
    if (!result.ok) throw new Error(result.error);
    expect(result.payload.buffer).toBe(frame.buffer);
    expect(result.payload.byteOffset).toBe(FRAME_HEADER_BYTES);
  });

  it('reads a frame inside a pooled Buffer at a non-zero offset, and from an ArrayBuffer', () => {
    const frame = encodeFrame(77, FrameKind.DATA, FLAG_FIN, new Uint8Array([4, 5]));
    const pool = new Uint8Array(100);
    pool.set(frame, 13);
    const inPool = Buffer.from(pool.buffer, 13, frame.byteLength);
    const result = decodeFrame(inPool);
    expect(result.ok && result.streamId === 77 && [...result.payload].join() === '4,5').toBe(true);
    const fromArrayBuffer = decodeFrame(frame.slice().buffer);
    expect(fromArrayBuffer.ok && fromArrayBuffer.streamId === 77).toBe(true);
  });

  const header = (streamId: number, kind: number, flags: number, payloadBytes = 0) => {
    const bytes = new Uint8Array(6 + payloadBytes);
    new DataView(bytes.buffer).setUint32(0, streamId);
    bytes[4] = kind;
    bytes[5] = flags;
    return bytes;
  };
  it.each([
    ['an empty message', new Uint8Array(0)],
    ['a 5-byte frame', new Uint8Array([0, 0, 0, 1, 0])],
    ['stream id 0', header(0, 0, 1)],
    ['unassigned kind 1', header(1, 1, 0)],
    ['unknown kind 7', header(1, 7, 0)],
    ['kind 255', header(1, 255, 0)],
    ['flag bit 1', header(1, 0, 2)],
    ['flags 0xff', header(1, 0, 0xff)],
    ['a payload of 64 KiB + 1', header(1, 0, 0, MAX_FRAME_PAYLOAD_BYTES + 1)],
    ['a 126-byte ping', header(1, FrameKind.WS_PING, 0, 126)],
    ['a 126-byte close', header(1, FrameKind.WS_CLOSE, 0, 126)],
  ])('refuses %s without throwing', (_name, bytes) => {
    let result: ReturnType<typeof decodeFrame> | undefined;
    expect(() => {
      result = decodeFrame(bytes);
    }).not.toThrow();
    expect(result?.ok).toBe(false);
  });

  it('refuses to encode what it would refuse to decode', () => {
    expect(() => encodeFrame(0, FrameKind.DATA, 0)).toThrow(RangeError);
    expect(() => encodeFrame(2 ** 32, FrameKind.DATA, 0)).toThrow(RangeError);
    expect(() => encodeFrame(1.5, FrameKind.DATA, 0)).toThrow(RangeError);
    expect(() => encodeFrame(1, 1 as FrameKindValue, 0)).toThrow(RangeError);
    expect(() => encodeFrame(1, FrameKind.DATA, 2)).toThrow(RangeError);
    expect(() => encodeFrame(1, FrameKind.DATA, 0, new Uint8Array(MAX_FRAME_PAYLOAD_BYTES + 1))).toThrow(RangeError);
    expect(() => encodeFrame(1, FrameKind.WS_PING, 0, new Uint8Array(126))).toThrow(RangeError);
  });
});

/** Concatenates decoded payloads and counts FIN flags, checking every piece on the way. */
function reassemble(frames: Uint8Array[], streamId: number, kind: SplittableKind, maxPiece: number) {
  const parts: Uint8Array[] = [];
  const finAt: number[] = [];
  frames.forEach((frame, index) => {
    const result = decodeFrame(frame);
    if (!result.ok) throw new Error(result.error);
    expect(result.streamId).toBe(streamId);
    expect(result.kind).toBe(kind);
    expect(result.payload.byteLength).toBeLessThanOrEqual(maxPiece);
    if (result.flags & FLAG_FIN) finAt.push(index);
    parts.push(result.payload);
  });
  return { body: Buffer.concat(parts), finAt };
}

describe('splitIntoFrames', () => {
  it.each([0, 1, 65_535, 65_536, 65_537, 3 * 65_536 + 5])('splits %d bytes into ≤64 KiB pieces that reassemble, FIN on the last only', (size) => {
    const body = new Uint8Array(size).map((_, i) => (i * 31 + 7) & 0xff);
    const frames = [...splitIntoFrames(3, FrameKind.DATA, body)];
    expect(frames.length).toBe(Math.max(1, Math.ceil(size / MAX_FRAME_PAYLOAD_BYTES)));
    const { body: whole, finAt } = reassemble(frames, 3, FrameKind.DATA, MAX_FRAME_PAYLOAD_BYTES);
    expect(Buffer.compare(whole, Buffer.from(body))).toBe(0);
    expect(finAt).toEqual([frames.length - 1]);
  });

  it('sends no FIN when the body goes on, and nothing at all for an empty chunk', () => {
    const frames = [...splitIntoFrames(3, FrameKind.WS_TEXT, new Uint8Array(70_000), { fin: false })];
    expect(frames.map((f) => decodeFrame(f)).every((r) => r.ok && r.flags === 0)).toBe(true);
    expect([...splitIntoFrames(3, FrameKind.DATA, new Uint8Array(0), { fin: false })]).toEqual([]);
  });

  it('checks its arguments at the call', () => {
    expect(() => splitIntoFrames(3, FrameKind.WS_CLOSE as SplittableKind, new Uint8Array(1))).toThrow(RangeError);
    expect(() => splitIntoFrames(0, FrameKind.DATA, new Uint8Array(1))).toThrow(RangeError);
    expect(() => splitIntoFrames(3, FrameKind.DATA, new Uint8Array(1), { maxPieceBytes: 0 })).toThrow(RangeError);
    expect(() => splitIntoFrames(3, FrameKind.DATA, new Uint8Array(1), { maxPieceBytes: MAX_FRAME_PAYLOAD_BYTES + 1 })).toThrow(
      RangeError,
    );
  });
});

describe('WebSocket close payloads', () => {
  it('round-trips a code and reason, and a close without a code', () => {
    expect(decodeWsClose(encodeWsClose(1000, 'bye'))).toEqual({ ok: true, code: 1000, reason: 'bye' });
    expect(decodeWsClose(encodeWsClose(4999, 'é'.repeat(61)))).toEqual({ ok: true, code: 4999, reason: 'é'.repeat(61) });
    expect(decodeWsClose(encodeWsClose())).toEqual({ ok: true, code: null, reason: '' });
    expect([...encodeWsClose(1001, 'a')]).toEqual([0x03, 0xe9, 0x61]);
  });

  it('allows a 123-byte reason and refuses 124', () => {
    expect(decodeWsClose(encodeWsClose(1000, 'x'.repeat(MAX_WS_CLOSE_REASON_BYTES))).ok).toBe(true);
    expect(() => encodeWsClose(1000, 'x'.repeat(124))).toThrow(RangeError);
    expect(() => encodeWsClose(1000, 'é'.repeat(62))).toThrow(RangeError);
    const tooLong = new Uint8Array(126);
    tooLong[0] = 0x03;
    tooLong[1] = 0xe8;
    expect(decodeWsClose(tooLong).ok).toBe(false);
  });

  it('refuses codes that may not be sent', () => {
    for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65_535]) {
      expect(isSendableCloseCode(code)).toBe(false);
      expect(() => encodeWsClose(code)).toThrow(RangeError);
      expect(decodeWsClose(new Uint8Array([code >> 8, code & 0xff])).ok).toBe(false);
    }
    for (const code of [1000, 1001, 1003, 1007, 1011, 1014, 3000, 4002, 4999]) expect(isSendableCloseCode(code)).toBe(true);
  });

  it('refuses invalid UTF-8, a 1-byte payload, a reason without a code and lone surrogates', () => {
    expect(decodeWsClose(new Uint8Array([0x03, 0xe8, 0xc3]))).toEqual({ ok: false, error: 'close reason is not valid UTF-8' });
    expect(decodeWsClose(new Uint8Array([0x03, 0xe8, 0xed, 0xa0, 0x80])).ok).toBe(false); // an encoded surrogate
    expect(decodeWsClose(new Uint8Array([0x03])).ok).toBe(false);
    expect(() => encodeWsClose(undefined, 'why')).toThrow(RangeError);
    expect(() => encodeWsClose(1000, '\ud800')).toThrow(RangeError);
  });
});

describe('properties', () => {
  const frameArb = fc
    .record({
      streamId: fc.integer({ min: 1, max: MAX_STREAM_ID }),
      kind: fc.constantFrom(...ALL_KINDS),
      flags: fc.constantFrom(0, FLAG_FIN),
    })
    .chain((head) =>
      fc.record({
        ...Object.fromEntries(Object.entries(head).map(([k, v]) => [k, fc.constant(v)])),
        payload: fc.uint8Array({ maxLength: SMALL_KINDS.includes(head.kind) ? 125 : 4096 }),
      }),
    ) as fc.Arbitrary<{ streamId: number; kind: FrameKindValue; flags: number; payload: Uint8Array }>;

  it(
    'decodeFrame(encodeFrame(f)) is f for every valid frame',
    () => {
      fc.assert(
        fc.property(frameArb, (f) => {
          const result = decodeFrame(encodeFrame(f.streamId, f.kind, f.flags, f.payload));
          expect(result).toEqual({ ok: true, ...f });
        }),
        { numRuns: NUM_RUNS },
      );
    },
    TIMEOUT_MS,
  );

  it(
    'decodeFrame never throws, and what it accepts re-encodes to the same bytes',
    () => {
      const bytesArb = fc.oneof(
        fc.uint8Array({ maxLength: 64 }),
        // Valid-looking headers with random kinds and flags, so the acceptance path is explored too.
        fc.tuple(fc.integer({ min: 0, max: MAX_STREAM_ID }), fc.nat(255), fc.nat(255), fc.uint8Array({ maxLength: 200 })).map(
          ([id, kind, flags, rest]) => {
            const bytes = new Uint8Array(6 + rest.byteLength);
            new DataView(bytes.buffer).setUint32(0, id);
            bytes[4] = kind % 8;
            bytes[5] = flags % 3;
            bytes.set(rest, 6);
            return bytes;
          },
        ),
      );
      fc.assert(
        fc.property(bytesArb, (bytes) => {
          const result = decodeFrame(bytes);
          if (result.ok) expect(encodeFrame(result.streamId, result.kind, result.flags, result.payload)).toEqual(bytes);
        }),
        { numRuns: NUM_RUNS * 3 },
      );
    },
    TIMEOUT_MS,
  );

  it(
    'decodeControl never throws on arbitrary strings and JSON',
    () => {
      const typeArb = fc.constantFrom(...CLIENT_TO_SERVER_TYPES, ...SERVER_TO_CLIENT_TYPES, 'Future', '__proto__', 'constructor');
      const textArb = fc.oneof(
        fc.string({ unit: 'binary', maxLength: 200 }),
        fc.json(),
        fc.record({ type: typeArb, data: fc.anything() }).map((m) => JSON.stringify(m) ?? ''),
        fc
          .record({
            type: typeArb,
            data: fc.dictionary(
              fc.constantFrom('api_key', 'stream_id', 'status', 'headers', 'path', 'method', 'bytes', 'success', 'user_id', 'error', 'local_port', 'subdomain', '__proto__'),
              fc.oneof(fc.jsonValue(), fc.array(fc.tuple(fc.string(), fc.string()), { maxLength: 4 })),
            ),
          })
          .map((m) => JSON.stringify(m)),
        // A valid sample with one field replaced by something plausible or odd: near the boundary,
        // where acceptance and refusal are both likely.
        fc
          .tuple(
            fc.constantFrom(...SAMPLES),
            fc.constantFrom('stream_id', 'status', 'headers', 'path', 'method', 'bytes', 'error', 'user_id', 'features', 'protocol', 'window', 'extra'),
            fc.oneof(
              fc.integer({ min: -2, max: 2 ** 32 + 1 }),
              fc.constantFrom(0, 1, 99, 100, 599, 600, 2 ** 31, 1.5, null, true, '', '/', 'GET', 'snake_code', [], {}),
              fc.string({ maxLength: 20 }),
              fc.array(fc.tuple(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 })), { maxLength: 3 }),
              fc.array(fc.string({ maxLength: 8 }), { maxLength: 3 }),
            ),
          )
          .map(([sample, key, value]) => JSON.stringify({ type: sample.type, data: { ...sample.data, [key]: value } })),
      );
      fc.assert(
        fc.property(textArb, fc.constantFrom<Direction>('client_to_server', 'server_to_client'), (text, direction) => {
          const result = decodeControl(text, direction);
          expect(['message', 'unknown_type', 'protocol_error']).toContain(result.status);
          // Anything accepted is something we could have sent: it re-encodes and decodes to itself.
          if (result.status === 'message') expect(decoded(encodeControl(result.message), direction)).toEqual(result.message);
        }),
        { numRuns: NUM_RUNS * 3 },
      );
    },
    TIMEOUT_MS,
  );

  it(
    'round-trips StreamOpen and StreamResponse with arbitrary valid headers, methods and paths',
    () => {
      const pairArb = fc.tuple(
        fc.stringMatching(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,20}$/),
        fc.stringMatching(/^[\t\x20-\x7e\x80-\xff]{0,40}$/),
      );
      const openArb = fc.record({
        stream_id: fc.integer({ min: 1, max: MAX_STREAM_ID }),
        method: fc.stringMatching(/^[A-Za-z-]{1,10}$/),
        path: fc.stringMatching(/^\/[\x21-\x7e]{0,60}$/),
        headers: fc.array(pairArb, { maxLength: 30 }),
      });
      const responseArb = fc.record({
        stream_id: fc.integer({ min: 1, max: MAX_STREAM_ID }),
        status: fc.integer({ min: 100, max: 599 }),
        headers: fc.array(pairArb, { maxLength: 30 }),
      });
      fc.assert(
        fc.property(openArb, responseArb, (open, response) => {
          const openMessage: ControlMessage = { type: 'StreamOpen', data: open };
          const responseMessage: ControlMessage = { type: 'StreamResponse', data: response };
          expect(decoded(encodeControl(openMessage), 'server_to_client')).toEqual(openMessage);
          expect(decoded(encodeControl(responseMessage), 'client_to_server')).toEqual(responseMessage);
        }),
        { numRuns: NUM_RUNS },
      );
    },
    TIMEOUT_MS,
  );

  it(
    'split pieces reassemble byte-identical with exactly one FIN, on the last',
    () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 0, max: 300_000 }),
          fc.integer({ min: 1, max: MAX_FRAME_PAYLOAD_BYTES }),
          fc.constantFrom<SplittableKind>(FrameKind.DATA, FrameKind.WS_TEXT, FrameKind.WS_BINARY),
          fc.integer({ min: 0, max: 255 }),
          (size, maxPieceBytes, kind, seed) => {
            const body = new Uint8Array(size).map((_, i) => (i * 131 + seed) & 0xff);
            const frames = [...splitIntoFrames(9, kind, body, { maxPieceBytes })];
            const { body: whole, finAt } = reassemble(frames, 9, kind, maxPieceBytes);
            expect(Buffer.compare(whole, Buffer.from(body))).toBe(0);
            expect(finAt).toEqual([frames.length - 1]);
          },
        ),
        { numRuns: 100 },
      );
    },
    TIMEOUT_MS,
  );

  it(
    'WS close payloads round-trip for every sendable code and short reason, and decoding never throws',
    () => {
      const codeArb = fc.integer({ min: 1000, max: 4999 }).filter(isSendableCloseCode);
      const reasonArb = fc.string({ unit: 'grapheme', maxLength: 60 }).filter((r) => Buffer.byteLength(r) <= MAX_WS_CLOSE_REASON_BYTES);
      fc.assert(
        fc.property(codeArb, reasonArb, fc.uint8Array({ maxLength: 130 }), (code, reason, junk) => {
          expect(decodeWsClose(encodeWsClose(code, reason))).toEqual({ ok: true, code, reason });
          const result = decodeWsClose(junk);
          if (result.ok && result.code !== null) expect(encodeWsClose(result.code, result.reason)).toEqual(junk);
        }),
        { numRuns: NUM_RUNS },
      );
    },
    TIMEOUT_MS,
  );
});
