/** What the user sees: plain lines, JSON lines, the live display, and server text made harmless. */
import { describe, expect, it } from 'bun:test';
import { applyKeystrokes } from '../../src/lib/hidden-input.ts';
import { describeLocalError } from '../../src/client/local-error.ts';
import { LiveDisplay } from '../../src/client/live-display.ts';
import { printable, requestLine } from '../../src/client/format.ts';
import { JsonReporter, PlainReporter } from '../../src/client/reporters.ts';

const AT = new Date(2026, 0, 15, 10, 30, 5).getTime();
const entry = { startedAtMs: AT, method: 'GET', path: '/api/users', status: 200, durationMs: 12 };

describe('request lines', () => {
  it('show time, method, path, status and duration', () => {
    expect(requestLine(entry)).toBe('10:30:05  GET     /api/users  200  12 ms');
    expect(requestLine({ ...entry, status: 502, error: 'Connection refused' })).toBe('10:30:05  GET     /api/users  502  12 ms  (Connection refused)');
    expect(requestLine({ ...entry, status: null, error: 'visitor went away' })).toContain('---');
  });

  it('mark a WebSocket, whose duration is its whole life', () => {
    expect(requestLine({ ...entry, path: '/chat', status: 101, durationMs: 5230, websocket: true })).toBe('10:30:05  GET     /chat  101  5230 ms  WebSocket');
    expect(requestLine({ ...entry, path: '/chat', status: 502, websocket: true, error: 'WebSocket upgrade refused (404)' })).toBe(
      '10:30:05  GET     /chat  502  12 ms  WebSocket  (WebSocket upgrade refused (404))',
    );
  });
});

describe('text from the server', () => {
  it('cannot reach the terminal with control characters', () => {
    expect(printable('bad\x1b[2Jnews\r\n\x07')).toBe('bad?[2Jnews???');
    const lines: string[] = [];
    new PlainReporter((line) => lines.push(line), () => AT).state('Disconnected', 'evil \x1b]0;title\x07');
    expect(lines[0]).not.toContain('\x1b');
  });
});

describe('JsonReporter', () => {
  it('prints one parseable object per event, snake_case', () => {
    const lines: string[] = [];
    const reporter = new JsonReporter((line) => lines.push(line), () => AT);
    reporter.state('Connected', 'http://myapp.expose.test');
    reporter.ready({ subdomain: 'myapp', publicUrl: 'http://myapp.expose.test', tunnelId: 't1', localOrigin: 'http://localhost:3000', flowControl: true });
    reporter.request({ ...entry, error: 'x\x1b' });
    const events = lines.map((line) => JSON.parse(line));
    expect(events).toEqual([
      { event: 'state', state: 'Connected', detail: 'http://myapp.expose.test', time: new Date(AT).toISOString() },
      { event: 'ready', public_url: 'http://myapp.expose.test', subdomain: 'myapp', tunnel_id: 't1', local_origin: 'http://localhost:3000', flow_control: true, time: new Date(AT).toISOString() },
      { event: 'request', time: new Date(AT).toISOString(), method: 'GET', path: '/api/users', status: 200, duration_ms: 12, error: 'x\x1b' },
    ]);
    expect(lines.join('\n')).not.toContain('\x1b');
  });

  it('says "websocket": true on a WebSocket\'s request event, and nothing on an HTTP one', () => {
    const lines: string[] = [];
    const reporter = new JsonReporter((line) => lines.push(line), () => AT);
    reporter.request({ ...entry, status: 101, websocket: true });
    reporter.request(entry);
    const [ws, http] = lines.map((line) => JSON.parse(line));
    expect(ws).toMatchObject({ event: 'request', method: 'GET', status: 101, websocket: true });
    expect(http).not.toHaveProperty('websocket');
  });
});

describe('LiveDisplay', () => {
  it('scrolls request lines above a status line it redraws in place, cut to the terminal width', () => {
    let out = '';
    const display = new LiveDisplay({ write: (text) => (out += text), columns: 40 }, false, () => AT);
    display.state('Connected', 'http://myapp.expose.test');
    display.ready({ subdomain: 'myapp', publicUrl: 'http://myapp.expose.test', tunnelId: undefined, localOrigin: 'http://localhost:3000', flowControl: true });
    display.request({ ...entry, path: `/${'x'.repeat(100)}` });
    display.close();
    // Every piece written between a line clear and a newline fits in one row.
    const pieces = out.split(/\n|\r\x1b\[2K/);
    for (const piece of pieces) expect(piece.length).toBeLessThan(40);
    expect(pieces.some((piece) => piece.startsWith('10:30:05  GET     /xxx'))).toBe(true);
    const finalStatus = pieces.at(-2)!;
    expect(finalStatus).toStartWith('● Connected  http://myapp.expose.test');
    expect(out.endsWith('\n')).toBe(true);
  });
});

describe('describeLocalError', () => {
  it('names the usual socket failures and keeps others short, on one line, without URLs', () => {
    expect(describeLocalError(Object.assign(new TypeError('Unable to connect'), { code: 'ECONNREFUSED' }))).toBe('Connection refused');
    expect(describeLocalError(new Error('boom\nat http://localhost:3000/secret?token=1 now'))).toBe('boom at <url> now');
    expect(describeLocalError(new Error('y'.repeat(500))).length).toBeLessThanOrEqual(200);
  });
});

describe('applyKeystrokes', () => {
  it('edits a hidden line and ends on Enter or Ctrl-C', () => {
    expect(applyKeystrokes({ text: '', state: 'typing' }, 'exp_k1_abc\x7fd\r')).toEqual({ text: 'exp_k1_abd', state: 'enter' });
    expect(applyKeystrokes({ text: 'abc', state: 'typing' }, '\x03')).toEqual({ text: '', state: 'abort' });
    expect(applyKeystrokes({ text: 'abc', state: 'typing' }, '\x1b[A')).toEqual({ text: 'abc', state: 'typing' });
  });
});
