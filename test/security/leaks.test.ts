/** What must never leave the server or reach its logs: passwords, hashes, full keys, tokens (500s: test/modules/health.test.ts). */
import { describe, expect, it } from 'bun:test';
import { GOOD_PASSWORD, makeTestApp, TEST_SECRET } from '../helpers/app.ts';

describe('secrets', () => {
  it('appear in no log line and in no answer after a whole account lifecycle', async () => {
    const t = makeTestApp({ EXPOSE_LOG_LEVEL: 'debug' });
    const bodies: string[] = [];
    const send = async (...args: Parameters<typeof t.request>) => {
      const res = await t.request(...args);
      bodies.push(await res.clone().text());
      return res;
    };
    const email = 'leak@example.com';
    const reg = (await (await send('POST', '/api/v1/auth/register', { json: { email, password: GOOD_PASSWORD } })).json()) as { token: string };
    await send('POST', '/api/v1/auth/login', { json: { email, password: 'wrong-password-xyz' } });
    const created = (await (await send('POST', '/api/v1/api-keys', { token: reg.token, json: { name: 'k' } })).json()) as { key: string };
    await send('GET', '/api/v1/api-keys', { token: created.key });
    await send('GET', '/api/v1/users/me', { token: created.key });
    await send('PUT', '/api/v1/users/me/password', { token: reg.token, json: { current_password: GOOD_PASSWORD, new_password: 'new-secret-zebra-77' } });
    await send('GET', '/api/v1/users/me', { token: `${reg.token}x` });
    await send('POST', '/api/v1/auth/logout', { token: reg.token });

    const hashes = (t.db.sqlite.query('SELECT password_hash AS h FROM users UNION ALL SELECT key_hash FROM api_keys').all() as { h: string }[]).map((r) => r.h);
    // Access-log lines are written just after each answer (a setImmediate): let the last ones land.
    await new Promise((resolve) => setImmediate(resolve));
    const logs = t.logs.join('\n');
    // The access log saw every request, so there was something to leak into.
    expect(t.logs.filter((line) => line.includes('"msg":"request"')).length).toBe(bodies.length);
    for (const secret of [GOOD_PASSWORD, 'wrong-password-xyz', 'new-secret-zebra-77', reg.token, created.key, TEST_SECRET, ...hashes]) {
      expect(logs).not.toContain(secret);
    }
    // After the one answer that carries it, the full key never appears again; hashes never do.
    const afterCreate = bodies.slice(bodies.findIndex((b) => b.includes(created.key)) + 1).join('\n');
    expect(afterCreate).not.toContain(created.key);
    for (const hash of hashes) expect(bodies.join('\n')).not.toContain(hash);
    expect(bodies.join('\n')).not.toContain('password_hash');
  });
});
