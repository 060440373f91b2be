/** The one listener (src/server.ts): which requests reach the API, whatever Host they carry. */
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rawHttp, startTunnelServer, type TunnelTestServer } from './helpers/tunnel.ts';

let server: TunnelTestServer;
beforeAll(async () => {
  server = await startTunnelServer();
});
afterAll(() => server.stop());

describe('the API behind the one listener', () => {
  // Elysia's path lookup, outside Bun's router, assumed hosts of 4 characters or more: `Host: x`
  // sent /api/v1/... to /v1/... (404). Hosts a proxy or a script may well send.
  for (const host of ['x', 'ab', 'abc', '1.2', 'localhost', '127.0.0.1:3000', '[::1]:3000']) {
    it(`routes /api/v1 paths by their full path with Host: ${host}`, async () => {
      const res = await rawHttp(server.port, `GET /health HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
      expect(res.status).toBe(200);
      const me = await rawHttp(server.port, `GET /api/v1/users/me HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
      expect(me.status).toBe(401);
      expect(JSON.parse(me.body)).toEqual({ error: 'unauthorized', message: 'Invalid or expired token' });
    });
  }
});

describe('start-up with TLS off', () => {
  /**
   * The modules a fresh process has loaded after importing `entries` (and running `then`, which sees
   * the last entry's exports as `last`), among those named by `pattern`.
   */
  async function loadedAfter(entries: string[], pattern: string, then = ''): Promise<string[]> {
    const script = `let last; ${entries.map((entry) => `last = await import(${JSON.stringify(entry)});`).join('')} ${then}
      console.log(JSON.stringify(Object.keys(require.cache).filter((path) => new RegExp(${JSON.stringify(pattern)}).test(path))));`;
    const child = Bun.spawn([process.execPath, '--no-env-file', '-e', script], { stdout: 'pipe', stderr: 'inherit' });
    const out = await new Response(child.stdout).text();
    expect(await child.exited).toBe(0);
    return JSON.parse(out) as string[];
  }
  const SRC = `${import.meta.dir}/../src`;
  const TLS_STACK = 'node_modules/acme-client/|src/tls/(acme|acme-source|file-source|certificate)\\.ts$';

  it('loads neither acme-client nor the certificate sources (they cost most of the time to the first answer)', async () => {
    expect(await loadedAfter([`${SRC}/cli/serve.ts`, `${SRC}/server.ts`], TLS_STACK)).toEqual([]);
    // The same look finds them once they are imported, as listenTls does with TLS on.
    expect((await loadedAfter([`${SRC}/cli/serve.ts`, `${SRC}/tls/acme-source.ts`, `${SRC}/tls/file-source.ts`], TLS_STACK)).length).toBeGreaterThanOrEqual(4);
  });

  it('loads the OpenAPI generator and the Swagger page only when the docs are first asked for', async () => {
    const OPENAPI = 'node_modules/@elysiajs/openapi/';
    expect(await loadedAfter([`${SRC}/cli/serve.ts`, `${SRC}/server.ts`, `${SRC}/app.ts`], OPENAPI)).toEqual([]);
    const asked = await loadedAfter(
      [`${import.meta.dir}/helpers/app.ts`],
      OPENAPI,
      `const t = last.makeTestApp(); for (const path of ['/docs', '/docs/json']) if ((await t.request('GET', path)).status !== 200) throw new Error(path);`,
    );
    expect(asked.length).toBeGreaterThanOrEqual(2);
  });

  it('loads jose only when a session token is first signed (a register or a login)', async () => {
    const JOSE = 'node_modules/jose/';
    expect(await loadedAfter([`${SRC}/cli/serve.ts`, `${SRC}/server.ts`, `${SRC}/lib/jwt.ts`], JOSE)).toEqual([]);
    const signed = await loadedAfter([`${SRC}/lib/jwt.ts`], JOSE, `await new last.JwtCodec('x'.repeat(32)).sign('user', 'session', 1);`);
    expect(signed.length).toBeGreaterThan(0);
  });

  it('evaluates, before the first answer, no Node module but bun:sqlite and none of what only some requests need', async () => {
    // The server's entry as the binary bundles it (scripts/build.ts: one output per on-demand chunk).
    const outdir = mkdtempSync(join(tmpdir(), 'expose-startup-graph-'));
    try {
      const built = await Bun.build({ entrypoints: [`${SRC}/index.ts`], outdir, target: 'bun', format: 'esm', splitting: true, minify: true, metafile: true });
      expect(built.success).toBe(true);
      const outputs = built.metafile!.outputs;
      // The entry and every chunk it imports statically, however deep: what runs before the first answer.
      const atStart = new Set<string>();
      const visit = (name: string) => {
        if (atStart.has(name)) return;
        atStart.add(name);
        for (const imported of outputs[name]!.imports) if (imported.kind === 'import-statement' && imported.path.startsWith('./')) visit(imported.path);
      };
      visit(Object.keys(outputs).find((name) => outputs[name]!.entryPoint !== undefined)!);
      const specifiers = new Set<string>();
      const inputs = new Set<string>();
      for (const name of atStart) {
        const text = readFileSync(join(outdir, name), 'utf8');
        for (const [, specifier] of text.matchAll(/\bimport\s*(?:[\w$*{][^"']*?from\s*)?["']([^"']+)["']/g)) if (!specifier!.startsWith('./')) specifiers.add(specifier!);
        for (const input of Object.keys(outputs[name]!.inputs)) inputs.add(input);
      }
      expect([...specifiers]).toEqual(['bun:sqlite']);
      const onDemand = /node_modules\/(jose|@elysiajs\/openapi|acme-client|file-type)\//;
      expect([...inputs].filter((input) => onDemand.test(input))).toEqual([]);
      // The same look sees them in the whole build.
      expect(Object.values(outputs).some((output) => Object.keys(output.inputs).some((input) => onDemand.test(input)))).toBe(true);
    } finally {
      rmSync(outdir, { recursive: true, force: true });
    }
  });
});
