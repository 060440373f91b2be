/**
 * Races between logins, password changes and the login back-off, each fired many times with a hasher
 * that sleeps a random few milliseconds before verifying, so the interleavings that matter happen.
 */
import { describe, expect, it } from 'bun:test';
import { PasswordHasher } from '../../src/lib/password.ts';
import { GOOD_PASSWORD, makeTestApp, uniqueEmail, type TestApp } from '../helpers/app.ts';

const LOGIN = '/api/v1/auth/login';
const ME = '/api/v1/users/me';
const PASSWORD = '/api/v1/users/me/password';
const WRONG_PASSWORD = 'not-the-right-one-42';
/** Auth-class limit high enough that only the per-account back-off is under test (0 would turn it off). */
const AUTH_LIMIT = { EXPOSE_RATE_LIMIT_AUTH: '1000000' };
const MAX_JITTER_MS = 8;

/** Cheap argon2id that waits a random moment before each verification, and counts them. */
class JitteryHasher extends PasswordHasher {
  verifications = 0;
  constructor() {
    super({ memoryCost: 256, timeCost: 1 });
  }
  override async verify(password: string, hash: string): Promise<boolean> {
    this.verifications++;
    await Bun.sleep(Math.random() * MAX_JITTER_MS);
    return super.verify(password, hash);
  }
}

function jitteryApp(): TestApp & { hasher: JitteryHasher } {
  const hasher = new JitteryHasher();
  return Object.assign(makeTestApp(AUTH_LIMIT, { hasher }), { hasher });
}

const login = (t: TestApp, email: string, password: string) => t.request('POST', LOGIN, { json: { email, password } });

describe('the per-account login back-off under concurrency', () => {
  it('lets a burst of 50 wrong passwords verify at most 5 times, 20 bursts over', async () => {
    for (let round = 0; round < 20; round++) {
      const t = jitteryApp();
      const email = uniqueEmail();
      await t.register(email);
      t.hasher.verifications = 0;
      const answers = await Promise.all(Array.from({ length: 50 }, () => login(t, email, WRONG_PASSWORD)));
      const statuses = answers.map((res) => res.status);
      expect(t.hasher.verifications).toBe(5);
      expect(statuses.filter((s) => s === 401)).toHaveLength(5);
      expect(statuses.filter((s) => s === 429)).toHaveLength(45);
    }
  });

  it('does not log in with the right password sent inside a locked burst, 20 bursts over', async () => {
    for (let round = 0; round < 20; round++) {
      const t = jitteryApp();
      const email = uniqueEmail();
      await t.register(email);
      const wrong = Array.from({ length: 99 }, () => login(t, email, WRONG_PASSWORD));
      const right = login(t, email, GOOD_PASSWORD);
      await Promise.all(wrong);
      expect((await right).status).toBe(429);
    }
  });

  it('still logs in once the lock has run out', async () => {
    const t = jitteryApp();
    const email = uniqueEmail();
    await t.register(email);
    await Promise.all(Array.from({ length: 10 }, () => login(t, email, WRONG_PASSWORD)));
    expect((await login(t, email, GOOD_PASSWORD)).status).toBe(429);
    t.clock.advance(1_000);
    expect((await login(t, email, GOOD_PASSWORD)).status).toBe(200);
  });
});

describe('a login racing a password change', () => {
  it('never leaves a session made from the old password valid once the change has answered, 60 races over', async () => {
    let loginsThatGotAToken = 0;
    for (let round = 0; round < 60; round++) {
      const t = jitteryApp();
      const email = uniqueEmail();
      const { token } = await t.register(email);
      const [loginRes, changeRes] = await Promise.all([
        login(t, email, GOOD_PASSWORD),
        t.request('PUT', PASSWORD, { token, json: { current_password: GOOD_PASSWORD, new_password: 'brand-new-secret-77' } }),
      ]);
      expect(changeRes.status).toBe(200);
      expect([200, 401]).toContain(loginRes.status);
      if (loginRes.status === 200) {
        loginsThatGotAToken++;
        const { token: oldPasswordToken } = (await loginRes.json()) as { token: string };
        expect((await t.request('GET', ME, { token: oldPasswordToken })).status).toBe(401);
      }
      expect((await t.request('GET', ME, { token })).status).toBe(200);
      expect((await login(t, email, 'brand-new-secret-77')).status).toBe(200);
    }
    // The race must really be run both ways: some logins finished first, some lost the swap.
    expect(loginsThatGotAToken).toBeGreaterThan(0);
  });
});

describe('concurrent password changes', () => {
  it('apply exactly one, whose password then works, and answer the others invalid_password, 30 races over', async () => {
    for (let round = 0; round < 30; round++) {
      const t = jitteryApp();
      const email = uniqueEmail();
      const first = await t.register(email);
      const secondRes = await login(t, email, GOOD_PASSWORD);
      const { token: second } = (await secondRes.json()) as { token: string };
      const tokens = [first.token, second, first.token, second, first.token, second];
      const newPasswords = tokens.map((_, i) => `replacement-secret-${round}-${i}`);
      const answers = await Promise.all(
        tokens.map((token, i) => t.request('PUT', PASSWORD, { token, json: { current_password: GOOD_PASSWORD, new_password: newPasswords[i] } })),
      );
      const statuses = answers.map((res) => res.status);
      const winners = statuses.flatMap((status, i) => (status === 200 ? [i] : []));
      expect(winners).toHaveLength(1);
      for (const [i, res] of answers.entries()) {
        if (i === winners[0]) continue;
        expect(res.status).toBe(400);
        expect(((await res.json()) as { error: string }).error).toBe('invalid_password');
      }
      const winner = winners[0]!;
      // Only the winner's password logs in (tried first: the five failures after it lock the account);
      // the session that made the change stays, the other is ended.
      expect((await login(t, email, newPasswords[winner]!)).status).toBe(200);
      for (const [i, candidate] of newPasswords.entries()) {
        if (i !== winner) expect((await login(t, email, candidate)).status).toBe(401);
      }
      expect((await t.request('GET', ME, { token: tokens[winner] })).status).toBe(200);
      expect((await t.request('GET', ME, { token: tokens[(winner + 1) % 2] })).status).toBe(401);
    }
  });
});
