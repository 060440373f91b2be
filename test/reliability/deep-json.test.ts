/**
 * Deeply nested JSON costs what any other refusal costs: measured as a ratio against a normal 400 in
 * the same process, and as /health staying prompt on a real server while such requests arrive. Also
 * that the entry point runs Elysia in production mode whatever NODE_ENV says.
 */
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTestApp } from '../helpers/app.ts';
import { startServer, type ServerChild } from './helpers.ts';

const LOGIN = '/api/v1/auth/login';
const JSON_HEADERS = { 'content-type': 'application/json' };
const DEEP_OBJECT = `{"email":${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)},"password":"x"}`;
const DEEP_ARRAY = `{"email":${'['.repeat(5_000)}${']'.repeat(5_000)},"password":"x"}`;
/** A normal 400: the schema refuses a number where the email belongs. */
const NORMAL_INVALID = '{"email":12345,"password":"x"}';
const ROUNDS = 30;
/** A deep body may read and scan up to 64 KiB more than a small one; it may not cost more than this many normal 400s. */
const MAX_COST_RATIO = 5;

const median = (values: number[]) => values.toSorted((a, b) => a - b)[Math.floor(values.length / 2)]!;

describe('the cost of a deeply nested body', () => {
  it(`is within ${MAX_COST_RATIO}x of a normal 400 in the same process, for objects and arrays`, async () => {
    const t = makeTestApp({ EXPOSE_RATE_LIMIT_AUTH: '0' });
    const timed = async (body: string) => {
      const started = performance.now();
      const res = await t.request('POST', LOGIN, { body, headers: JSON_HEADERS });
      const elapsed = performance.now() - started;
      expect(res.status).toBe(400);
      return elapsed;
    };
    for (let i = 0; i < 5; i++) await timed(NORMAL_INVALID); // warm-up: compile the route first
    const normal: number[] = [];
    const deepObject: number[] = [];
    const deepArray: number[] = [];
    // Interleaved, so a noisy neighbour slows all three alike.
    for (let i = 0; i < ROUNDS; i++) {
      normal.push(await timed(NORMAL_INVALID));
      deepObject.push(await timed(DEEP_OBJECT));
      deepArray.push(await timed(DEEP_ARRAY));
    }
    const ratios = { object: median(deepObject) / median(normal), array: median(deepArray) / median(normal) };
    console.log(`deep JSON cost ratio to a normal 400: object ${ratios.object.toFixed(2)}, array ${ratios.array.toFixed(2)}`);
    expect(ratios.object).toBeLessThan(MAX_COST_RATIO);
    expect(ratios.array).toBeLessThan(MAX_COST_RATIO);
  });
});

describe('/health while deeply nested bodies arrive', () => {
  let server: ServerChild;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'expose-deep-'));
    server = await startServer(join(dir, 'expose.db'), { EXPOSE_RATE_LIMIT_AUTH: '100000' });
  });
  afterAll(() => {
    server?.process.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  /** Time /health takes to answer while `count` bodies are being sent beside it. */
  async function healthBeside(body: string, count: number): Promise<number> {
    const flood = Array.from({ length: count }, () => fetch(`${server.url}${LOGIN}`, { method: 'POST', body, headers: JSON_HEADERS }));
    const started = performance.now();
    const health = await fetch(`${server.url}/health`);
    const elapsed = performance.now() - started;
    expect(health.status).toBe(200);
    for (const res of await Promise.all(flood)) expect(res.status).toBe(400);
    return elapsed;
  }

  it('answers about as promptly as beside the same number of normal 400s', async () => {
    const normal: number[] = [];
    const deep: number[] = [];
    for (let i = 0; i < 10; i++) {
      normal.push(await healthBeside(NORMAL_INVALID, 10));
      deep.push(await healthBeside(i % 2 ? DEEP_ARRAY : DEEP_OBJECT, 10));
    }
    console.log(`/health beside 10 requests: normal ${median(normal).toFixed(1)} ms, deep ${median(deep).toFixed(1)} ms`);
    // Before the depth bound, ten deep bodies held /health for 15 s. The floor absorbs the scheduling
    // noise of comparing millisecond figures on a shared machine.
    expect(median(deep)).toBeLessThan(Math.max(median(normal) * 10, 50));
  });
});

describe('the entry point', () => {
  it('runs Elysia in production mode even when NODE_ENV says development', async () => {
    // Elysia fixes its mode when first loaded; outside production its validation reports pretty-print
    // the whole invalid value. Load the real entry (as `--version`), then build one such report.
    const script = `
      process.argv = [process.argv[0], 'expose-server', '--version'];
      await import(${JSON.stringify(join(import.meta.dir, '..', '..', 'src', 'index.ts'))});
      const { ValidationError, t } = await import('elysia');
      const error = new ValidationError('body', t.Object({ a: t.String() }), { a: { b: [1, 2] } });
      console.log(JSON.stringify({ multiline: error.message.includes('\\n') }));
    `;
    const child = Bun.spawn([process.execPath, '--eval', script], { env: { ...process.env, NODE_ENV: 'development' }, stdout: 'pipe', stderr: 'pipe' });
    const [stdout, code] = await Promise.all([new Response(child.stdout).text(), child.exited]);
    expect(code).toBe(0);
    const report = stdout.trim().split('\n').at(-1)!;
    expect(JSON.parse(report)).toEqual({ multiline: false });
  });
});
