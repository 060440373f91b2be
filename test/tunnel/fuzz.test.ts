/**
 * A hostile client, fuzzed. With fast-check, an authenticated and registered client sends random and
 * mutated control messages and binary frames over its control WebSocket while a visitor's request is
 * in flight on its tunnel: frames shorter than their header, unknown kinds and flags, stream 0, even,
 * never-opened and finished stream ids, FIN twice, data after FIN or after StreamClose, WindowUpdate
 * with absurd values, text frames over 64 KiB, unknown message types, JSON of the right shape with the
 * wrong field types, floods for streams never opened, a second StreamResponse, and so on.
 *
 * Each case is checked against a small model of the protocol written from the spec, not from the
 * decoder: which messages end the connection (4002) and which are ignored, and what the visitor in
 * flight must get (the relayed status and body, 502, 504, or a cut body once the client is gone). After
 * every case: the server answers /health, a second, well-behaved tunnel on the same server still relays
 * a visitor correctly, nothing is logged at level error, and no stream or session is left behind. A
 * second property pushes tens of MiB through the same paths and bounds the heap's growth.
 */
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import fc from 'fast-check';
import {
  FLAG_FIN,
  FrameKind,
  MAX_CONTROL_TEXT_BYTES,
  MAX_FRAME_PAYLOAD_BYTES,
  MAX_STREAM_ID,
  MAX_WINDOW_BYTES,
  MAX_WS_CONTROL_PAYLOAD_BYTES,
} from '../../src/tunnel/protocol.ts';
import { DOMAIN, type ScriptedClient, concat, startTunnelServer, type TestUser, type TunnelTestServer } from '../helpers/tunnel.ts';

/** Cases of the main property; FUZZ_RUNS raises it for a deeper search (the memory property runs a third as many). */
const NUM_RUNS = Number(process.env.FUZZ_RUNS ?? 100);
/**
 * The cases share one server, so a case is not independent of those before it: fast-check's shrinking
 * would replay pieces of a run against a server in another state and report a misleading "smallest"
 * case. The first failing case is reported as it was, with its seed (FUZZ_SEED=... replays the run);
 * FUZZ_SHRINK=1 shrinks anyway.
 */
const FC_PARAMETERS: fc.Parameters<unknown> = {
  endOnFailure: process.env.FUZZ_SHRINK !== '1',
  ...(process.env.FUZZ_SEED === undefined ? {} : { seed: Number(process.env.FUZZ_SEED) }),
};
/** EXPOSE_TUNNEL_TIMEOUT for this server: short, so "no answer" cases end in a 504 quickly. */
const RESPONSE_TIMEOUT_MS = 700;
/**
 * Share of a property's cases that may end in a "late 504" (see checkOutcome): a slow moment is
 * forgiven, a machine so slow that cases pass this way by the dozen is a failure (none do today).
 */
const LATE_504_MAX_SHARE = 0.1;
/** Upper bound for anything the visitor or the server must do once the case has been sent: far above what it takes, so it only catches a hang. */
const SETTLE_MS = 8000;
/** Generous: a loaded, shared machine is slow, and FUZZ_RUNS may be raised. */
const TEST_TIMEOUT_MS = 240_000;
/** Heap growth allowed over the memory property (after a full GC at both ends). */
const HEAP_GROWTH_BOUND_BYTES = 16 * 1024 * 1024;
/** What the memory property sends in 64 KiB DATA frames for streams that are gone, whatever the number of runs: 5× the bound. */
const MEMORY_STRAY_BYTES = 5 * HEAP_GROWTH_BOUND_BYTES;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

// ───────────────────────────── the hostile actions ─────────────────────────────

/**
 * Which stream an action names: the visitor's stream in flight, one finished earlier on this connection,
 * an odd id the server has not opened yet, an even id (never a server's), the largest id, or any u32.
 */
type IdRef = 'live' | 'finished' | 'future' | 'even' | 'max' | { raw: number };

type Action =
  /** A well-formed StreamResponse (any status the protocol allows, 1xx included). */
  | { t: 'response'; id: IdRef; status: number; headers: [string, string][] }
  /** A well-formed DATA frame, FIN or not. */
  | { t: 'data'; id: IdRef; fin: boolean; size: number; fill: number }
  /** A well-formed WS_* frame (this tunnel has no WebSocket streams: always a stray). */
  | { t: 'wsFrame'; id: IdRef; kind: number; fin: boolean; size: number }
  | { t: 'streamClose'; id: IdRef }
  | { t: 'streamError'; id: IdRef; error: string }
  | { t: 'wsAccepted'; id: IdRef; protocol: string | undefined }
  /** A valid WindowUpdate, absurdly large or not (0 = the connection). */
  | { t: 'window'; id: IdRef | 0; bytes: number }
  | { t: 'heartbeat' }
  /** A second RegisterTunnel: TunnelError already_registered, the connection stays. */
  | { t: 'register'; subdomain: string | null }
  /** A second Auth: ignored. */
  | { t: 'auth'; apiKey: string }
  /** A type this version does not know: ignored after authentication. */
  | { t: 'unknownType'; text: string }
  /** Many valid messages or frames for streams never opened: all dropped. */
  | { t: 'flood'; what: 'response' | 'data' | 'close' | 'error' | 'window' | 'accepted'; count: number; even: boolean }
  /** 64 KiB DATA frames for finished or even streams: dropped (and their connection window given back). */
  | { t: 'strayBulk'; frames: number; even: boolean }
  /** A text frame of exactly 64 KiB (bytes, ASCII or 2-byte characters) holding an unknown type: ignored. */
  | { t: 'maxText'; wide: boolean }
  // Everything below is a protocol error: close 4002, and nothing after it is processed.
  | { t: 'fatalText'; why: string; text: string }
  /** A text frame over 64 KiB, up to 1 MiB, as JSON or as garbage. */
  | { t: 'bigText'; bytes: number; json: boolean; wide: boolean }
  | { t: 'fatalFrame'; why: string; bytes: number[]; pad: number };

const FATAL = new Set<Action['t']>(['fatalText', 'bigText', 'fatalFrame']);

const idRef: fc.Arbitrary<IdRef> = fc.oneof(
  { weight: 8, arbitrary: fc.constant('live' as const) },
  { weight: 2, arbitrary: fc.constantFrom('finished' as const, 'future' as const, 'even' as const, 'max' as const) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: MAX_STREAM_ID }).map((raw) => ({ raw })) },
);

const tokenChars = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&\'*+-.^_`|~'.split('');
const token = fc.string({ unit: fc.constantFrom(...tokenChars), minLength: 1, maxLength: 24 });
/** Field values: HTAB, SP, visible ASCII and obs-text. */
const fieldValue = fc.string({
  unit: fc.oneof(fc.integer({ min: 0x20, max: 0x7e }), fc.integer({ min: 0x80, max: 0xff }), fc.constant(0x09)).map((c) => String.fromCharCode(c)),
  maxLength: 40,
});
const headerPairs = fc.array(
  fc.tuple(
    fc.oneof(
      token,
      // Names the relay treats specially: hop-by-hop (dropped), cookies (confined), framing (Bun's own).
      fc.constantFrom('set-cookie', 'Set-Cookie', 'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'proxy-x', 'content-type', 'x-expose-error'),
    ),
    fc.oneof(fieldValue, fc.constantFrom('0', '5', '999999', 'chunked', 'close', 'a=b; Domain=expose.test', 'a=b; Domain=.test', 'keep-alive, x')),
  ),
  { maxLength: 6 },
);
const status = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(200, 201, 204, 206, 301, 304, 404, 418, 500, 599) },
  { weight: 2, arbitrary: fc.integer({ min: 100, max: 599 }) },
  // Informational statuses are valid in StreamResponse but can never be a visitor's final answer.
  { weight: 1, arbitrary: fc.constantFrom(100, 101, 102, 103, 199) },
);
const dataSize = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 0, max: 300 }) },
  { weight: 1, arbitrary: fc.constantFrom(0, 1, MAX_FRAME_PAYLOAD_BYTES - 1, MAX_FRAME_PAYLOAD_BYTES) },
  { weight: 1, arbitrary: fc.integer({ min: 301, max: MAX_FRAME_PAYLOAD_BYTES }) },
);

// Every client and server type name: an "unknown" type must be none of them.
const KNOWN_TYPES = new Set(['Auth', 'AuthResult', 'RegisterTunnel', 'TunnelReady', 'TunnelError', 'StreamOpen', 'StreamResponse', 'StreamClose', 'StreamError', 'WsUpgrade', 'WsUpgradeAccepted', 'Heartbeat', 'WindowUpdate', 'GoAway']);
const SERVER_ONLY_TYPES = ['AuthResult', 'TunnelReady', 'TunnelError', 'StreamOpen', 'WsUpgrade', 'GoAway'];

/** JSON values with no "__proto__" key anywhere (that key alone is a protocol error, tested on its own). */
const jsonValue = fc.jsonValue({ maxDepth: 3 }).filter((v) => !JSON.stringify(v).includes('"__proto__"'));
const unknownTypeText = fc
  .tuple(
    fc.oneof(fc.string({ minLength: 1, maxLength: 64 }), fc.constantFrom('Ping', 'StreamOpenAck', 'heartbeat', 'streamresponse', 'toString', 'constructor', 'hasOwnProperty', 'Auth ', 'x'.repeat(64))),
    fc.option(jsonValue, { nil: undefined }),
  )
  .filter(([type]) => !KNOWN_TYPES.has(type))
  .map(([type, data]) => JSON.stringify(data === undefined ? { type } : { type, data }));

// Wrong field values, as raw JSON (so 1e400, which parses to Infinity, can be written). Each is invalid for its field.
const BAD_STREAM_ID = ['0', '-1', '1.5', '4294967296', '"1"', 'null', 'true', '[]', '{}', '1e400', '-1e400', '-0'];
const BAD_VALUES: Record<string, string[]> = {
  stream_id: BAD_STREAM_ID,
  window_stream_id: ['-1', '1.5', '4294967296', '"0"', 'null', 'false', '1e400', '[0]'],
  bytes: ['0', '-0', '-1', '-2147483648', '2147483648', '4294967296', '9007199254740993', '1e400', '-1e400', '1e308', '0.5', '1e-7', '"10"', '"NaN"', '"Infinity"', 'null', 'true', '[]', '{}'],
  status: ['99', '600', '0', '-200', '200.5', '"200"', 'null', '2e400', '{}', '1000'],
  headers: [
    '"x"', '{}', 'null', '[["a"]]', '[["a","b","c"]]', '[["bad name","v"]]', '[["x","a\\r\\nb"]]', '[["x","a\\nSet-Cookie: p=1"]]', '[["x","\\u0000"]]',
    '[["x","\\u0100"]]', '[["x","\\ud83d\\ude00"]]', '[[1,"v"]]', '[["x",1]]', '[["",""]]', '[["x:y","v"]]', '[null]', '[["x",null]]',
    JSON.stringify(Array.from({ length: 1025 }, () => ['a', 'b'])),
  ],
  error: ['1', 'null', '[]', '{}', JSON.stringify('e'.repeat(2049))],
  protocol: ['"bad proto"', '1', '""', '"a,b"', '[]', '{}'],
  local_port: ['0', '65536', '"3000"', 'null', '-1', '1.5', '[]'],
  subdomain: ['1', 'true', '[]', '{}', JSON.stringify('s'.repeat(257))],
  api_key: ['1', 'null', '[]', JSON.stringify('k'.repeat(8193))],
  client: ['1', 'true', '[]', JSON.stringify('c'.repeat(257))],
  features: ['"flow_control"', '[1]', '[""]', '{}', '[null]', JSON.stringify(Array(33).fill('f')), JSON.stringify(['f'.repeat(257)])],
};
/** The client's message types with valid raw field values; `required` fields may also be left out (a protocol error). */
const SHAPES: { type: string; fields: Record<string, { valid: string; required: boolean; bad: string }> }[] = [
  { type: 'StreamResponse', fields: { stream_id: { valid: '2', required: true, bad: 'stream_id' }, status: { valid: '200', required: true, bad: 'status' }, headers: { valid: '[]', required: true, bad: 'headers' } } },
  { type: 'StreamClose', fields: { stream_id: { valid: '2', required: true, bad: 'stream_id' } } },
  { type: 'StreamError', fields: { stream_id: { valid: '2', required: true, bad: 'stream_id' }, error: { valid: '"x"', required: true, bad: 'error' } } },
  { type: 'WsUpgradeAccepted', fields: { stream_id: { valid: '2', required: true, bad: 'stream_id' }, protocol: { valid: '"chat"', required: false, bad: 'protocol' } } },
  { type: 'WindowUpdate', fields: { stream_id: { valid: '0', required: true, bad: 'window_stream_id' }, bytes: { valid: '1', required: true, bad: 'bytes' } } },
  { type: 'RegisterTunnel', fields: { subdomain: { valid: '"abc"', required: false, bad: 'subdomain' }, local_port: { valid: '3000', required: true, bad: 'local_port' } } },
  { type: 'Auth', fields: { api_key: { valid: '"k"', required: true, bad: 'api_key' }, client: { valid: '"c/1"', required: false, bad: 'client' }, features: { valid: '[]', required: false, bad: 'features' } } },
];
const messageText = (type: string, fields: [string, string][]) => `{"type":${JSON.stringify(type)},"data":{${fields.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(',')}}}`;

const wrongFieldText: fc.Arbitrary<Action> = fc
  .tuple(fc.constantFrom(...SHAPES), fc.nat(), fc.nat(), fc.boolean())
  .map(([shape, fieldPick, badPick, drop]) => {
    const names = Object.keys(shape.fields);
    const target = names[fieldPick % names.length]!;
    const spec = shape.fields[target]!;
    const bad = BAD_VALUES[spec.bad]!;
    const leaveOut = drop && spec.required;
    const value = bad[badPick % bad.length]!;
    const fields = names.flatMap((name): [string, string][] => (name !== target ? [[name, shape.fields[name]!.valid]] : leaveOut ? [] : [[name, value]]));
    return { t: 'fatalText', why: `${shape.type}.${target} ${leaveOut ? 'missing' : `= ${value.slice(0, 40)}`}`, text: messageText(shape.type, fields) };
  });

const envelopeText: fc.Arbitrary<Action> = fc.oneof(
  // `data` missing or not an object, on a known client type (Heartbeat included: its data is {}).
  fc.tuple(fc.constantFrom('Heartbeat', 'StreamClose', 'WindowUpdate', 'RegisterTunnel', 'Auth'), fc.constantFrom(undefined, 'null', '[]', '"x"', '1', 'true'))
    .map(([type, data]): Action => ({ t: 'fatalText', why: `${type} with data ${data}`, text: data === undefined ? `{"type":"${type}"}` : `{"type":"${type}","data":${data}}` })),
  // `type` not a string of 1 to 64 characters.
  fc.constantFrom('{"data":{}}', '{"type":1,"data":{}}', '{"type":null,"data":{}}', '{"type":"","data":{}}', `{"type":"${'T'.repeat(65)}","data":{}}`, '{"type":["Heartbeat"],"data":{}}')
    .map((text): Action => ({ t: 'fatalText', why: 'a bad type', text })),
  // Types only the server sends.
  fc.tuple(fc.constantFrom(...SERVER_ONLY_TYPES), fc.constantFrom('{}', '{"stream_id":1,"method":"GET","path":"/","headers":[]}', '{"reason":"shutdown"}'))
    .map(([type, data]): Action => ({ t: 'fatalText', why: `server-only ${type}`, text: `{"type":"${type}","data":${data}}` })),
  // Valid JSON that is not an object.
  fc.oneof(fc.constantFrom('[]', '1', '"x"', 'null', 'true', '[{"type":"Heartbeat","data":{}}]'), jsonValue.filter((v) => typeof v !== 'object' || v === null || Array.isArray(v)).map((v) => JSON.stringify(v)))
    .map((text): Action => ({ t: 'fatalText', why: 'JSON that is not an object', text })),
  // Not JSON at all: truncated messages, trailing garbage, random text.
  fc.tuple(fc.constantFrom('{"type":"Heartbeat","data":{}}', '{"type":"StreamClose","data":{"stream_id":1}}'), fc.nat())
    .map(([valid, cut]): Action => ({ t: 'fatalText', why: 'truncated JSON', text: valid.slice(0, 1 + (cut % (valid.length - 1))) })),
  fc.constantFrom('{"type":"Heartbeat","data":{}}x', '{"type":"Heartbeat","data":{}}{}', "{'type':'Heartbeat'}", '{"type":"Heartbeat","data":{},}', '', ' ', 'NaN', '{"type":"WindowUpdate","data":{"stream_id":0,"bytes":NaN}}', '{"type":"WindowUpdate","data":{"stream_id":0,"bytes":Infinity}}', '{"type":"WindowUpdate","data":{"stream_id":0,"bytes":0x10}}', '\u0000')
    .map((text): Action => ({ t: 'fatalText', why: 'malformed JSON', text })),
  fc.string({ unit: 'binary', maxLength: 60 }).filter((s) => {
    try {
      JSON.parse(s);
      return false;
    } catch {
      return true;
    }
  }).map((text): Action => ({ t: 'fatalText', why: 'random text', text })),
  // A "__proto__" key anywhere, even under a type nobody knows.
  fc.constantFrom(
    '{"type":"Heartbeat","data":{"__proto__":{}}}',
    '{"type":"StreamClose","data":{"stream_id":1,"__proto__":{"polluted":true}}}',
    '{"type":"NoSuchType","data":{"a":[{"__proto__":1}]}}',
    '{"__proto__":{"type":"Heartbeat"},"type":"Heartbeat","data":{}}',
  ).map((text): Action => ({ t: 'fatalText', why: 'a __proto__ key', text })),
);

const frameHeader = (streamId: number, kind: number, flags: number) => [streamId >>> 24, (streamId >>> 16) & 0xff, (streamId >>> 8) & 0xff, streamId & 0xff, kind, flags];
const fatalFrame: fc.Arbitrary<Action> = fc.oneof(
  fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 5 }).map((bytes): Action => ({ t: 'fatalFrame', why: `a ${bytes.length}-byte frame`, bytes, pad: 0 })),
  fc.tuple(fc.constantFrom(0, 2, 3, 4, 5, 6), fc.integer({ min: 0, max: 1 }), fc.integer({ min: 0, max: 16 }))
    .map(([kind, flags, pad]): Action => ({ t: 'fatalFrame', why: 'stream 0', bytes: frameHeader(0, kind, flags), pad })),
  fc.tuple(fc.integer({ min: 1, max: MAX_STREAM_ID }), fc.oneof(fc.constant(1), fc.integer({ min: 7, max: 255 })), fc.integer({ min: 0, max: 255 }))
    .map(([id, kind, flags]): Action => ({ t: 'fatalFrame', why: `unknown kind ${kind}`, bytes: frameHeader(id, kind, flags), pad: 3 })),
  fc.tuple(fc.integer({ min: 1, max: MAX_STREAM_ID }), fc.constantFrom(0, 2, 3, 4, 5, 6), fc.integer({ min: 2, max: 255 }))
    .map(([id, kind, flags]): Action => ({ t: 'fatalFrame', why: `unknown flags ${flags}`, bytes: frameHeader(id, kind, flags), pad: 1 })),
  fc.tuple(fc.integer({ min: 1, max: 9 }), fc.constantFrom(0, 2, 3), fc.integer({ min: 1, max: 4096 }))
    .map(([id, kind, over]): Action => ({ t: 'fatalFrame', why: `kind ${kind} payload over 64 KiB`, bytes: frameHeader(id, kind, 1), pad: MAX_FRAME_PAYLOAD_BYTES + over })),
  fc.tuple(fc.integer({ min: 1, max: 9 }), fc.constantFrom(4, 5, 6), fc.integer({ min: 1, max: 2000 }))
    .map(([id, kind, over]): Action => ({ t: 'fatalFrame', why: `kind ${kind} payload over 125 bytes`, bytes: frameHeader(id, kind, 1), pad: MAX_WS_CONTROL_PAYLOAD_BYTES + over })),
);

const benign: fc.Arbitrary<Action> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ t: fc.constant('response' as const), id: idRef, status, headers: headerPairs }) },
  { weight: 8, arbitrary: fc.record({ t: fc.constant('data' as const), id: idRef, fin: fc.boolean(), size: dataSize, fill: fc.integer({ min: 0, max: 255 }) }) },
  {
    weight: 2,
    arbitrary: fc
      .tuple(idRef, fc.constantFrom(2, 3, 4, 5, 6), fc.boolean(), fc.integer({ min: 0, max: 2048 }))
      .map(([id, kind, fin, size]): Action => ({ t: 'wsFrame', id, kind, fin, size: kind >= 4 ? size % (MAX_WS_CONTROL_PAYLOAD_BYTES + 1) : size })),
  },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('streamClose' as const), id: idRef }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('streamError' as const), id: idRef, error: fc.oneof(fc.constant('origin_timeout'), fc.string({ maxLength: 30 })) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('wsAccepted' as const), id: idRef, protocol: fc.option(token, { nil: undefined }) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      t: fc.constant('window' as const),
      id: fc.oneof(fc.constant(0 as const), idRef),
      bytes: fc.oneof(fc.constantFrom(1, MAX_WINDOW_BYTES, MAX_WINDOW_BYTES - 1), fc.integer({ min: 1, max: MAX_WINDOW_BYTES })),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ t: 'heartbeat' as const }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('register' as const), subdomain: fc.option(fc.constantFrom('other-name', 'bystander', 'NOT VALID', 'api'), { nil: null }) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('auth' as const), apiKey: fc.oneof(fc.constant('exp_k1_nope'), fc.string({ maxLength: 40 })) }) },
  { weight: 2, arbitrary: unknownTypeText.map((text): Action => ({ t: 'unknownType', text })) },
  {
    weight: 1,
    arbitrary: fc.record({
      t: fc.constant('flood' as const),
      what: fc.constantFrom('response' as const, 'data' as const, 'close' as const, 'error' as const, 'window' as const, 'accepted' as const),
      count: fc.integer({ min: 20, max: 300 }),
      even: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('strayBulk' as const), frames: fc.integer({ min: 1, max: 8 }), even: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('maxText' as const), wide: fc.boolean() }) },
);
const fatal: fc.Arbitrary<Action> = fc.oneof(
  { weight: 3, arbitrary: wrongFieldText },
  { weight: 3, arbitrary: envelopeText },
  { weight: 3, arbitrary: fatalFrame },
  {
    weight: 1,
    arbitrary: fc.record({
      t: fc.constant('bigText' as const),
      bytes: fc.oneof(fc.constant(MAX_CONTROL_TEXT_BYTES + 1), fc.integer({ min: MAX_CONTROL_TEXT_BYTES + 1, max: 1024 * 1024 }), fc.constant(1024 * 1024)),
      json: fc.boolean(),
      wide: fc.boolean(),
    }),
  },
);

type Finisher = 'complete' | 'close' | 'none';
interface Case {
  /** Ask for flow control when this case has to open a new connection. */
  flow: boolean;
  method: 'GET' | 'HEAD' | 'POST';
  actions: Action[];
  /** What the client does after its actions, if its connection is still up: answers the visitor properly, closes cleanly, or nothing. */
  finisher: Finisher;
}

const caseOf = (actions: fc.Arbitrary<Action[]>, finisher: fc.Arbitrary<Finisher>): fc.Arbitrary<Case> =>
  fc.record({ flow: fc.boolean(), method: fc.constantFrom('GET' as const, 'GET' as const, 'HEAD' as const, 'POST' as const), actions, finisher });

/** Mostly benign-looking traffic with a protocol error now and then, so connections live through several cases. */
const anyCase = caseOf(
  fc.array(fc.oneof({ weight: 12, arbitrary: benign }, { weight: 1, arbitrary: fatal }), { minLength: 1, maxLength: 10 }),
  fc.oneof({ weight: 6, arbitrary: fc.constant('complete' as const) }, { weight: 1, arbitrary: fc.constant('close' as const) }, { weight: 2, arbitrary: fc.constant('none' as const) }),
);

// ───────────────────────────── the model ─────────────────────────────

/** What the spec says happens to the visitor's stream, built up as the actions are sent. */
class StreamModel {
  head: number | undefined;
  fin = false;
  failed: 'error' | 'timeout' | 'closed' | undefined;
  /** The failure came after the head and the FIN: the body may have been delivered whole, or cut. */
  failedLate = false;
  readonly body: Uint8Array[] = [];

  constructor(private readonly method: string) {}

  /** An answer with no body for the visitor: HEAD, 204, 205 (Bun sends it with Content-Length: 0, as RFC 9110 says), 304. */
  get bodyless(): boolean {
    return this.method === 'HEAD' || this.head === 204 || this.head === 205 || this.head === 304;
  }

  respond(status: number): void {
    if (this.failed === undefined && this.head === undefined) this.head = status;
    // An informational status cannot be a final answer: the visitor gets 502, the stream is abandoned.
    if (this.head !== undefined && this.head < 200 && this.failed === undefined) this.failed = 'error';
  }

  data(payload: Uint8Array, fin: boolean): void {
    if (this.failed !== undefined || this.fin) return;
    this.body.push(payload);
    if (fin) this.fin = true;
  }

  fail(kind: 'error' | 'timeout' | 'closed'): void {
    if (this.failed !== undefined) return;
    this.failed = kind;
    if (this.head !== undefined && this.fin) this.failedLate = true;
  }

  /** The stream is still open on both sides once the case is over: a response under way, or no answer yet. */
  get open(): boolean {
    return this.failed === undefined && !(this.head !== undefined && this.fin);
  }
}

type Expected =
  | { kind: 'error'; status: 502 | 504; code: 'tunnel_error' | 'tunnel_timeout' }
  | { kind: 'response'; status: number; body: Uint8Array; ending: 'complete' | 'cut' | 'either' };

function expectedOf(model: StreamModel): Expected {
  if (model.head === undefined || model.head < 200) {
    if (model.failed === 'timeout' || model.failed === undefined) return { kind: 'error', status: 504, code: 'tunnel_timeout' };
    return { kind: 'error', status: 502, code: 'tunnel_error' };
  }
  const body = model.bodyless ? new Uint8Array(0) : concat(model.body);
  // HEAD, 204 and 304 are answered with no body at all; a 205's body is discarded by Bun, and may be cut first.
  if (model.bodyless) return { kind: 'response', status: model.head, body, ending: model.head === 205 && model.failed !== undefined ? 'either' : 'complete' };
  if (model.failed === undefined) return { kind: 'response', status: model.head, body, ending: model.fin ? 'complete' : 'cut' };
  return { kind: 'response', status: model.head, body, ending: model.failedLate ? 'either' : 'cut' };
}

// ───────────────────────────── the visitor ─────────────────────────────

type Outcome = { kind: 'closed' } | { kind: 'answer'; status: number; exposeError: string | null; body: Uint8Array | 'cut' };

/** Rejects with `what` after `ms`: a hang is a failure that says what hung. */
function deadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: Timer | undefined;
  return Promise.race([promise, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`hung: ${what} did not settle within ${ms} ms`)), ms)))]).finally(() =>
    clearTimeout(timer),
  );
}

describe('fuzzing the control channel of a registered client', () => {
  let server: TunnelTestServer;
  let fuzzUser: TestUser;
  let bystander: ScriptedClient;
  let connections = 0;
  let visits = 0;
  let fuzzer: { client: ScriptedClient; name: string; finished: number[]; registers: number } | undefined;
  /** Bytes the fuzzing client put on the wire (text and binary), for the memory property. */
  let sentBytes = 0;
  const stats = new Map<string, number>();
  const count = (key: string) => stats.set(key, (stats.get(key) ?? 0) + 1);

  beforeAll(async () => {
    server = await startTunnelServer({ tunnel: { responseTimeoutMs: RESPONSE_TIMEOUT_MS, graceMs: 1000 } });
    fuzzUser = await server.newUser();
    const other = await server.newUser();
    ({ client: bystander } = await server.tunnel(other.key, 'bystander'));
    bystander.answerHeartbeats = true;
    bystander.serve(async (request) => ({ status: 200, headers: [['x-bystander', '1']], body: `bystander ${request.method} ${request.path} ${decoder.decode(await request.body())}` }));
  });
  afterAll(async () => {
    if (process.env.FUZZ_DEBUG) console.log(Object.fromEntries([...stats].sort()));
    expect(bystander.handlerErrors).toEqual([]);
    expect(bystander.isOpen).toBe(true);
    await server.stop();
  });

  /** The fuzzing client's connection: the current one, or a new one with a fresh subdomain after the last was closed. */
  const fuzzerConnection = async (flow: boolean) => {
    if (fuzzer?.client.isOpen) return fuzzer;
    const name = `fuzz-${++connections}`;
    const { client } = await server.tunnel(fuzzUser.key, name, flow ? { features: ['flow_control'] } : {});
    client.answerHeartbeats = true;
    fuzzer = { client, name, finished: [], registers: 0 };
    return fuzzer;
  };

  const send = (client: ScriptedClient, message: string | Uint8Array) => {
    // What is sent after a protocol error, while the close is on its way, is lost: as it should be.
    if (!client.isOpen) return;
    sentBytes += typeof message === 'string' ? Buffer.byteLength(message) : message.byteLength;
    client.ws.send(message);
  };
  const frame = (streamId: number, kind: number, flags: number, payload: Uint8Array) => {
    const bytes = new Uint8Array(6 + payload.byteLength);
    bytes.set(frameHeader(streamId, kind, flags));
    bytes.set(payload, 6);
    return bytes;
  };

  /** The server, and the other tunnel on it, are unaffected. */
  const expectBystanderFine = async () => {
    expect((await server.api('GET', '/health')).status).toBe(200);
    const n = ++visits;
    const res = await deadline(server.visit(`bystander.${DOMAIN}`, `/check/${n}`, { method: 'POST', body: `payload ${n}` }), SETTLE_MS, 'a bystander visit');
    expect(res.status).toBe(200);
    expect(res.headers.get('x-bystander')).toBe('1');
    expect(await res.text()).toBe(`bystander POST /check/${n} payload ${n}`);
    expect(server.errorLogs()).toEqual([]);
  };

  /** Polls `check` until true: the server's own bookkeeping settles a moment after the sockets do. */
  const eventually = async (check: () => boolean, what: string | (() => string)) => {
    const until = performance.now() + SETTLE_MS;
    while (!check()) {
      if (performance.now() > until) throw new Error(`${typeof what === 'string' ? what : what()} did not happen within ${SETTLE_MS} ms`);
      await Bun.sleep(2);
    }
  };

  /** Runs one case: the visitor's request, the actions, the finisher; then checks everything the spec promises. */
  const runCase = async (c: Case) => {
    const conn = await fuzzerConnection(c.flow);
    const { client } = conn;
    const path = `/case-${++visits}`;
    const visitorBody = c.method === 'POST' ? `request body ${visits}` : undefined;
    const visitStart = performance.now();
    // No keep-alive: fetch silently retries a request whose reused connection was reset, and the retry
    // (a second StreamOpen, or a 404 once the tunnel is gone) would hide what the first one got.
    const response = server.visit(`${conn.name}.${DOMAIN}`, path, { method: c.method, body: visitorBody, keepalive: false });
    // Settled whatever happens, so an early failure of the test leaves no unhandled rejection behind.
    const headOutcome: Promise<Response | 'closed'> = response.then((r) => r, () => 'closed' as const);
    const stream = await client.stream((open) => open.path === path, `the StreamOpen for ${path}`);
    const live = stream.id;
    expect(live % 2).toBe(1);
    expect(stream.open.method).toBe(c.method);
    const model = new StreamModel(c.method);

    const resolve = (ref: IdRef | 0): number => {
      if (ref === 0) return 0;
      if (ref === 'live') return live;
      if (ref === 'finished') return conn.finished.at(-1) ?? live + 4;
      if (ref === 'future') return live + 2;
      if (ref === 'even') return live + 1;
      if (ref === 'max') return MAX_STREAM_ID;
      return ref.raw;
    };
    /** An id the server has never opened and will not open during this case. */
    const stray = (i: number, even: boolean) => (even ? 2 * (i + 1) : Math.min(MAX_STREAM_ID, live + 2 * (i + 1000)));

    let fatalAt: Action | undefined;
    let registers = 0;
    const perform = (a: Action) => {
      count(a.t);
      if (fatalAt !== undefined) {
        // After a protocol error nothing more is processed; send it anyway, to check that.
        count('after-fatal');
      }
      const apply = fatalAt === undefined;
      switch (a.t) {
        case 'response': {
          const id = resolve(a.id);
          send(client, JSON.stringify({ type: 'StreamResponse', data: { stream_id: id, status: a.status, headers: a.headers } }));
          if (apply && id === live) model.respond(a.status);
          return;
        }
        case 'data': {
          const id = resolve(a.id);
          const payload = new Uint8Array(a.size).fill(a.fill);
          send(client, frame(id, FrameKind.DATA, a.fin ? FLAG_FIN : 0, payload));
          if (apply && id === live) model.data(payload, a.fin);
          return;
        }
        case 'wsFrame':
          send(client, frame(resolve(a.id), a.kind, a.fin ? FLAG_FIN : 0, new Uint8Array(a.size).fill(0x41)));
          return;
        case 'streamClose': {
          const id = resolve(a.id);
          send(client, JSON.stringify({ type: 'StreamClose', data: { stream_id: id } }));
          if (apply && id === live) model.fail('closed');
          return;
        }
        case 'streamError': {
          const id = resolve(a.id);
          send(client, JSON.stringify({ type: 'StreamError', data: { stream_id: id, error: a.error } }));
          if (apply && id === live) model.fail(a.error === 'origin_timeout' ? 'timeout' : 'error');
          return;
        }
        case 'wsAccepted':
          send(client, JSON.stringify({ type: 'WsUpgradeAccepted', data: { stream_id: resolve(a.id), ...(a.protocol === undefined ? {} : { protocol: a.protocol }) } }));
          return;
        case 'window':
          send(client, JSON.stringify({ type: 'WindowUpdate', data: { stream_id: resolve(a.id), bytes: a.bytes } }));
          return;
        case 'heartbeat':
          send(client, '{"type":"Heartbeat","data":{}}');
          return;
        case 'register':
          send(client, JSON.stringify({ type: 'RegisterTunnel', data: { subdomain: a.subdomain, local_port: 3000 } }));
          if (apply) registers++;
          return;
        case 'auth':
          send(client, JSON.stringify({ type: 'Auth', data: { api_key: a.apiKey, features: ['flow_control'] } }));
          return;
        case 'unknownType':
          send(client, a.text);
          return;
        case 'flood':
          for (let i = 0; i < a.count; i++) {
            const id = stray(i, a.even);
            if (a.what === 'data') send(client, frame(id, FrameKind.DATA, i % 2 === 0 ? FLAG_FIN : 0, new Uint8Array(i % 50)));
            else if (a.what === 'response') send(client, JSON.stringify({ type: 'StreamResponse', data: { stream_id: id, status: 200, headers: [['x-flood', String(i)]] } }));
            else if (a.what === 'close') send(client, JSON.stringify({ type: 'StreamClose', data: { stream_id: id } }));
            else if (a.what === 'error') send(client, JSON.stringify({ type: 'StreamError', data: { stream_id: id, error: 'flood' } }));
            else if (a.what === 'accepted') send(client, JSON.stringify({ type: 'WsUpgradeAccepted', data: { stream_id: id } }));
            else send(client, JSON.stringify({ type: 'WindowUpdate', data: { stream_id: id, bytes: MAX_WINDOW_BYTES } }));
          }
          return;
        case 'strayBulk': {
          const payload = new Uint8Array(MAX_FRAME_PAYLOAD_BYTES).fill(0x5a);
          for (let i = 0; i < a.frames; i++) send(client, frame(a.even ? stray(i, true) : (conn.finished[i % Math.max(1, conn.finished.length)] ?? stray(i, false)), FrameKind.DATA, 0, payload));
          return;
        }
        case 'maxText': {
          // Exactly MAX_CONTROL_TEXT_BYTES bytes of UTF-8: the largest control message there may be.
          const shell = (pad: string) => `{"type":"PaddingForTheLimit","data":{"p":"${pad}"}}`;
          const room = MAX_CONTROL_TEXT_BYTES - Buffer.byteLength(shell(''));
          const pad = a.wide ? 'é'.repeat(Math.floor(room / 2)) + 'x'.repeat(room % 2) : 'x'.repeat(room);
          const text = shell(pad);
          expect(Buffer.byteLength(text)).toBe(MAX_CONTROL_TEXT_BYTES);
          send(client, text);
          return;
        }
        case 'fatalText':
          send(client, a.text);
          break;
        case 'bigText': {
          const unit = a.wide ? 'é' : 'x';
          const filler = (bytes: number) => unit.repeat(Math.ceil(bytes / Buffer.byteLength(unit)));
          const text = a.json ? `{"type":"Heartbeat","data":{"p":"${filler(a.bytes)}"}}` : filler(a.bytes);
          expect(Buffer.byteLength(text)).toBeGreaterThan(MAX_CONTROL_TEXT_BYTES);
          send(client, text);
          break;
        }
        case 'fatalFrame': {
          const bytes = new Uint8Array(a.bytes.length + a.pad);
          bytes.set(a.bytes);
          send(client, bytes);
          break;
        }
      }
      if (FATAL.has(a.t) && fatalAt === undefined) {
        fatalAt = a;
        model.fail('closed');
      }
    };

    for (const action of c.actions) perform(action);
    let closedByUs = false;
    if (fatalAt === undefined) {
      if (c.finisher === 'complete') {
        perform({ t: 'response', id: 'live', status: 200, headers: [['x-finisher', '1']] });
        perform({ t: 'data', id: 'live', fin: true, size: 3, fill: 0x21 });
      } else if (c.finisher === 'close') {
        client.close(1000);
        closedByUs = true;
        model.fail('closed');
      }
    }

    // The connection's fate: closed with 4002 after a protocol error, else still serving (a RegisterTunnel
    // round trip proves the server read everything sent before it, and answered each RegisterTunnel).
    const why = fatalAt === undefined ? 'no protocol error' : `${fatalAt.t}${'why' in fatalAt ? ` (${fatalAt.why})` : ''}`;
    if (fatalAt !== undefined) {
      const closed = await client.until(() => client.closeInfo, `the close (4002) after ${why}`, SETTLE_MS);
      expect({ code: closed.code, why }).toEqual({ code: 4002, why });
      count('closed-4002');
    } else if (closedByUs) {
      expect((await client.waitClosed(SETTLE_MS)).code).toBe(1000);
    } else {
      send(client, JSON.stringify({ type: 'RegisterTunnel', data: { subdomain: null, local_port: 3000 } }));
      conn.registers += registers + 1;
      const expected = conn.registers;
      await client.until(() => client.closeInfo ?? (client.all('TunnelError').length >= expected || undefined), 'TunnelError for every RegisterTunnel', SETTLE_MS);
      expect({ open: client.isOpen, why, closeCode: client.closeInfo?.code }).toEqual({ open: true, why, closeCode: undefined });
      expect(client.all('TunnelError').map((e) => e.error)).toEqual(Array(expected).fill('already_registered'));
    }
    // By now the server has read every message of the case.
    const processedMs = performance.now() - visitStart;

    // The visitor in flight: never a hang; the relayed answer, 502/504, or a cut once the client is gone.
    if (model.open && model.head !== undefined && model.head >= 200) {
      // A response under way with no FIN: nothing of ours cuts it (a long download is not an error; and
      // Bun holds back the end of the head until the first body byte). It ends when the client goes
      // away: the visitor's body is cut then, and the visitor of a body-less answer is not affected.
      client.close(1000);
      closedByUs = true;
      model.fail('closed');
      await client.waitClosed(SETTLE_MS);
    }
    const head = await deadline(headOutcome, SETTLE_MS + RESPONSE_TIMEOUT_MS, `the visitor's answer to ${path}`);
    let body: Uint8Array | 'cut' = new Uint8Array(0);
    if (head !== 'closed') {
      body = await deadline(
        head.arrayBuffer().then((b) => new Uint8Array(b), () => 'cut' as const),
        SETTLE_MS,
        `the body of the visitor's answer to ${path}`,
      );
    }
    const outcome: Outcome = head === 'closed' ? { kind: 'closed' } : { kind: 'answer', status: head.status, exposeError: head.headers.get('x-expose-error'), body };
    const expected = expectedOf(model);
    checkOutcome(outcome, expected, processedMs, why);
    // One visitor request, one stream.
    expect(client.all('StreamOpen').filter((open) => open.path === path)).toHaveLength(1);
    count(`visitor ${outcome.kind === 'closed' ? 'closed' : `${outcome.status}${outcome.body === 'cut' ? ' cut' : ''}`}`);

    // Nothing left behind: the stream is forgotten, and a closed connection leaves no session and no tunnel.
    if (client.isOpen) {
      conn.finished.push(live);
      const found = server.running.relay.registry.lookup(conn.name, Date.now());
      expect(found.state).toBe('live');
      if (found.state === 'live') {
        // Reads the session's private map only to say which streams are left in a failure message.
        const left = () => [...(found.tunnel.session as unknown as { streams: Map<number, unknown> }).streams.keys()];
        await eventually(() => found.tunnel.activeStreams === 0, () => `the stream of ${path} (${live}) to be forgotten; still open: ${left().join(', ')}`);
      }
    } else {
      await client.waitClosed(SETTLE_MS);
      await eventually(() => server.running.relay.registry.lookup(conn.name, Date.now()).state === 'free', `the tunnel ${conn.name} to be freed`);
    }
    await eventually(() => server.running.relay.sessionCount === 1 + (client.isOpen ? 1 : 0), 'the closed sessions to be forgotten');
    expect(server.running.relay.registry.heldCount).toBe(0);
    await expectBystanderFine();
  };

  /** `processedMs`: from the visitor's request to the moment the server had certainly read the whole case. */
  function checkOutcome(outcome: Outcome, expected: Expected, processedMs: number, why: string): void {
    const seen = outcome.kind === 'closed' ? { closed: true } : { status: outcome.status, error: outcome.exposeError, cut: outcome.body === 'cut' };
    const context = { why, processedMs: Math.round(processedMs), expected: expected.kind === 'error' ? expected : { ...expected, body: `${expected.body.byteLength} bytes` }, seen };
    const expectedTimeout = expected.kind === 'error' && expected.status === 504;
    if (!expectedTimeout && outcome.kind === 'answer' && outcome.status === 504 && outcome.exposeError === 'tunnel_timeout' && processedMs >= RESPONSE_TIMEOUT_MS) {
      // The machine was too slow: the server's own timeout may have come before the client's answer
      // was read. A 504 is then right (and it is never accepted when the case was read in time); the
      // properties bound how many cases end this way (LATE_504_MAX_SHARE).
      count('late 504');
      return;
    }
    if (expected.kind === 'error') {
      if (outcome.kind !== 'answer' || outcome.status !== expected.status || outcome.exposeError !== expected.code) throw new Error(`visitor outcome: ${JSON.stringify(context)}`);
      return;
    }
    if (outcome.kind === 'closed') {
      if (expected.ending === 'complete') throw new Error(`visitor outcome: ${JSON.stringify(context)}`);
      return;
    }
    // (A client may send its own X-Expose-Error header: only the status tells a relayed answer here.)
    if (outcome.status !== expected.status) throw new Error(`visitor outcome: ${JSON.stringify(context)}`);
    if (outcome.body === 'cut') {
      if (expected.ending === 'complete') throw new Error(`visitor outcome: ${JSON.stringify(context)}`);
      return;
    }
    if (expected.ending === 'cut') throw new Error(`visitor outcome (a body that should have been cut arrived whole): ${JSON.stringify(context)}`);
    expect(Buffer.from(outcome.body).equals(Buffer.from(expected.body))).toBe(true);
  }

  it(
    'survives random and mutated messages and frames: the model holds, the visitor is answered, the bystander keeps serving',
    async () => {
      const lateBefore = stats.get('late 504') ?? 0;
      await fc.assert(fc.asyncProperty(anyCase, runCase), { ...FC_PARAMETERS, numRuns: NUM_RUNS });
      // The late-504 escape is for a slow moment, not a way through every case.
      expect((stats.get('late 504') ?? 0) - lateBefore).toBeLessThanOrEqual(Math.ceil(NUM_RUNS * LATE_504_MAX_SHARE));
      // The fuzzer got past the decoder into every path that matters.
      expect(stats.get('closed-4002') ?? 0).toBeGreaterThan(0);
      expect([...stats.keys()].some((k) => k.startsWith('visitor 2'))).toBe(true);
      expect([...stats.keys()].some((k) => k.startsWith('visitor 50'))).toBe(true);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'keeps memory bounded while tens of MiB of hostile traffic go through',
    async () => {
      // Every case starts with 64 KiB DATA frames for streams that are gone (MEMORY_STRAY_BYTES in all),
      // then whatever else, 64 KiB response bodies and 1 MiB text frames included; no case waits for the 504.
      const runs = Math.max(20, Math.ceil(NUM_RUNS / 3));
      const bulk = fc.record({ frames: fc.constant(Math.ceil(MEMORY_STRAY_BYTES / runs / MAX_FRAME_PAYLOAD_BYTES)), even: fc.boolean(), t: fc.constant('strayBulk' as const) });
      const heavy = caseOf(
        fc.tuple(bulk, fc.array(fc.oneof({ weight: 12, arbitrary: benign }, { weight: 1, arbitrary: fatal }), { maxLength: 8 })).map(([first, rest]) => [first, ...rest]),
        fc.constantFrom('complete' as const, 'complete' as const, 'close' as const),
      );
      // Warm up: code paths compiled, pools and caches at their working size.
      const warmUps = fc.sample(heavy, { numRuns: 8, seed: 1 });
      const lateBefore = stats.get('late 504') ?? 0;
      for (const c of warmUps) await runCase(c);
      Bun.gc(true);
      const before = process.memoryUsage();
      const sentBefore = sentBytes;
      await fc.assert(fc.asyncProperty(heavy, runCase), { ...FC_PARAMETERS, numRuns: runs });
      Bun.gc(true);
      const after = process.memoryUsage();
      const sent = sentBytes - sentBefore;
      const growth = after.heapUsed - before.heapUsed;
      if (process.env.FUZZ_DEBUG) console.log({ runs, sentMiB: sent / 2 ** 20, heapGrowthMiB: growth / 2 ** 20, rssGrowthMiB: (after.rss - before.rss) / 2 ** 20 });
      expect((stats.get('late 504') ?? 0) - lateBefore).toBeLessThanOrEqual(Math.ceil((warmUps.length + runs) * LATE_504_MAX_SHARE));
      // The bound is real: a server that kept even a quarter of what it was sent (a Map of stray
      // streams, a queue never drained) would exceed it. Everything the server keeps is bounded per
      // connection (windows, queues) and dies with it.
      expect(sent).toBeGreaterThan(4 * HEAP_GROWTH_BOUND_BYTES);
      expect(growth).toBeLessThan(HEAP_GROWTH_BOUND_BYTES);
      // RSS moves with the allocator and the JIT, so its bound is looser; it still fails if all that was sent stayed.
      expect(after.rss - before.rss).toBeLessThan(4 * HEAP_GROWTH_BOUND_BYTES);
    },
    TEST_TIMEOUT_MS,
  );
});
