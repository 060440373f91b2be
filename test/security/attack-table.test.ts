/** Every protected route against every credential attack: 401, WWW-Authenticate, and nothing changed. */
import { describe, expect, it } from 'bun:test';
import { makeTestApp } from '../helpers/app.ts';
import { ATTACKS, PROTECTED_ROUTES, snapshot, type AttackContext } from '../helpers/attacks.ts';

async function victim(): Promise<AttackContext> {
  const t = makeTestApp({ EXPOSE_RATE_LIMIT_API: '0' });
  const account = await t.registerWithKey();
  return { t, ...account };
}

for (const route of PROTECTED_ROUTES) {
  describe(`${route.method} ${route.path({ keyId: ':id' } as AttackContext)}`, () => {
    for (const attack of ATTACKS) {
      it(`answers 401 to ${attack.name}`, async () => {
        const ctx = await victim();
        const header = await attack.header(ctx);
        const before = snapshot(ctx.t);
        const res = await ctx.t.request(route.method, route.path(ctx), {
          json: route.json,
          headers: header === null ? {} : { authorization: header },
        });
        expect(res.status).toBe(401);
        expect(res.headers.get('www-authenticate')).toBe('Bearer');
        expect(await res.json()).toEqual({ error: 'unauthorized', message: 'Invalid or expired token' });
        expect(snapshot(ctx.t)).toBe(before);
      });
    }
  });
}

describe('the attack table itself', () => {
  it('uses credentials that work before they are attacked', async () => {
    for (const route of PROTECTED_ROUTES) {
      const ctx = await victim();
      const res = await ctx.t.request(route.method, route.path(ctx), { json: route.json, token: ctx.token });
      expect(res.status).toBeLessThan(300);
    }
    const ctx = await victim();
    expect((await ctx.t.request('GET', '/api/v1/users/me', { token: ctx.key })).status).toBe(200);
  });
});
