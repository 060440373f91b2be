/** The request id on every answer, and the one access-log line per request with the status really sent. */
import { describe, expect, it } from 'bun:test';
import { requestIdFrom } from '../../src/http/request-log.ts';
import { makeTestApp, type TestApp } from '../helpers/app.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Access-log lines are written just after the answer (a setImmediate); this lets them land. */
const afterResponses = () => new Promise((resolve) => setImmediate(resolve));

async function requestLines(t: TestApp): Promise<Array<Record<string, unknown>>> {
  await afterResponses();
  return t.logs.map((line) => JSON.parse(line) as Record<string, unknown>).filter((line) => line.msg === 'request');
}

describe('requestIdFrom', () => {
  it('keeps a short id made of letters, digits, dot, dash and underscore', () => {
    expect(requestIdFrom('abc-123_x.y')).toBe('abc-123_x.y');
    expect(requestIdFrom('a'.repeat(64))).toBe('a'.repeat(64));
  });

  it('replaces a missing, long or unsafe id with a fresh UUID', () => {
    for (const incoming of [null, '', 'a'.repeat(65), 'a b', 'a"b', 'x\u00e9', '{"level":"error"}']) {
      expect(requestIdFrom(incoming)).toMatch(UUID);
    }
  });
});

describe('request log', () => {
  it('puts an X-Request-Id on every answer: success, error envelope, unknown route, body too large', async () => {
    const t = makeTestApp();
    const answers = await Promise.all([
      t.request('GET', '/health'),
      t.request('GET', '/api/v1/users/me'),
      t.request('GET', '/no/such/route'),
      t.request('POST', '/api/v1/auth/login', { body: 'x'.repeat(70_000), headers: { 'content-type': 'application/json' } }),
      t.request('GET', '/docs'),
    ]);
    expect(answers.map((res) => res.status)).toEqual([200, 401, 404, 413, 200]);
    for (const res of answers) expect(res.headers.get('x-request-id')).toMatch(UUID);
    expect(new Set(answers.map((res) => res.headers.get('x-request-id'))).size).toBe(answers.length);
  });

  it('echoes a safe incoming X-Request-Id and logs under it', async () => {
    const t = makeTestApp();
    const res = await t.request('GET', '/health', { headers: { 'x-request-id': 'edge-7f3a' } });
    expect(res.headers.get('x-request-id')).toBe('edge-7f3a');
    expect((await requestLines(t)).map((line) => line.request_id)).toEqual(['edge-7f3a']);
  });

  it('logs one line per request with the status that was sent, error envelopes included', async () => {
    const t = makeTestApp();
    const sent = [
      await t.request('GET', '/health'),
      await t.request('GET', '/no/such/route'),
      await t.request('GET', '/api/v1/users/me'),
      await t.request('POST', '/api/v1/auth/login', { json: { email: 'not-an-object-field' } }),
      await t.request('POST', '/api/v1/auth/login', { body: 'x'.repeat(70_000), headers: { 'content-type': 'application/json' } }),
    ];
    const lines = await requestLines(t);
    expect(lines.map((line) => line.status)).toEqual(sent.map((res) => res.status));
    expect(lines.map((line) => line.status)).toEqual([200, 404, 401, 400, 413]);
    expect(lines.map((line) => line.method)).toEqual(['GET', 'GET', 'GET', 'POST', 'POST']);
    for (const [i, line] of lines.entries()) {
      expect(line.level).toBe('info');
      expect(line.request_id).toBe(sent[i]!.headers.get('x-request-id'));
      expect(typeof line.duration_ms).toBe('number');
    }
  });

  it('logs the path without its query string, and never a credential', async () => {
    const t = makeTestApp();
    const { token, key } = await t.registerWithKey();
    await afterResponses();
    t.logs.length = 0;
    await t.request('GET', '/api/v1/users/me?api_key=leaked-in-url', { token: key });
    await t.request('GET', '/api/v1/api-keys', { token });
    const lines = await requestLines(t);
    expect(lines.map((line) => line.path)).toEqual(['/api/v1/users/me', '/api/v1/api-keys']);
    const everything = t.logs.join('\n');
    for (const secret of [token, key, 'leaked-in-url']) expect(everything).not.toContain(secret);
  });

  it('redacts a key or a token pasted into the path, plain or percent-encoded, whole or cut short', async () => {
    const t = makeTestApp();
    const { token, key } = await t.registerWithKey();
    await afterResponses();
    t.logs.length = 0;
    const pasted = [
      `/api/v1/api-keys/${key}`,
      `/api/v1/api-keys/${key.slice(0, 30)}`,
      `/api/v1/api-keys/${key.replaceAll('_', '%5F')}`,
      `/api/v1/api-keys/${token}`,
      `/api/v1/${token.replaceAll('.', '%2E')}/x`,
    ];
    for (const path of pasted) await t.request('DELETE', path, { token });
    const lines = await requestLines(t);
    expect(lines.map((line) => line.path)).toEqual([
      '/api/v1/api-keys/[redacted]',
      '/api/v1/api-keys/[redacted]',
      '/api/v1/api-keys/[redacted]',
      '/api/v1/api-keys/[redacted]',
      '/api/v1/[redacted]/x',
    ]);
    const everything = t.logs.join('\n');
    for (const secret of [key.slice(7, 30), token.split('.')[1]!, token.split('.')[2]!]) expect(everything).not.toContain(secret);
  });

  it('logs the client address, walking X-Forwarded-For only past trusted proxies', async () => {
    const t = makeTestApp({ EXPOSE_TRUSTED_PROXIES: '10.0.0.0/8' });
    await t.request('GET', '/health', { peer: '10.1.2.3', headers: { 'x-forwarded-for': '203.0.113.9' } });
    await t.request('GET', '/health', { peer: '198.51.100.7', headers: { 'x-forwarded-for': '203.0.113.9' } });
    expect((await requestLines(t)).map((line) => line.ip)).toEqual(['203.0.113.9', '198.51.100.7']);
  });
});
