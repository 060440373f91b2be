/**
 * A client generated from the served OpenAPI document, as a user of the API would make one: types from
 * openapi-typescript, calls through openapi-fetch. The program below must type-check with strict
 * settings (and its misuses must not), then run the account flow against the compiled binary.
 */
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import openapiTS, { type OpenAPI3 } from 'openapi-typescript';
import { BINARY_TEST_PASSWORD, ServerProcess, installBinary, removeTempDirs, tempDir } from './helpers/binary.ts';

const BUILD_TIMEOUT_MS = 120_000;
const ROOT = join(import.meta.dir, '..');
/** Inside the checkout, so the program resolves openapi-fetch from its node_modules like any project. */
const WORK_ROOT = join(ROOT, 'node_modules', '.cache', 'expose-openapi-client');

/** What a user would write with the generated types. `run` returns every step's answer for the test. */
const CLIENT_PROGRAM = `
import createClient, { type Client } from 'openapi-fetch';
import type { paths } from './schema';

type ListError = 'unauthorized' | 'payload_too_large' | 'rate_limited';

export async function run(baseUrl: string, email: string, password: string) {
  const client = createClient<paths>({ baseUrl });
  const registered = await client.POST('/api/v1/auth/register', { body: { email, password } });
  if (!registered.data) throw new Error(\`register: \${registered.response.status}\`);
  const login = await client.POST('/api/v1/auth/login', { body: { email, password } });
  if (!login.data) throw new Error(\`login: \${login.response.status}\`);
  const session = { Authorization: \`Bearer \${login.data.token}\` };

  const created = await client.POST('/api/v1/api-keys', { body: { name: 'generated client' }, headers: session });
  if (!created.data) throw new Error(\`create key: \${created.response.status}\`);
  const key: string = created.data.key;
  const listed = await client.GET('/api/v1/api-keys', { headers: { Authorization: \`Bearer \${key}\` } });
  if (!listed.data) throw new Error(\`list keys: \${listed.response.status}\`);

  const deleted = await client.DELETE('/api/v1/api-keys/{id}', { params: { path: { id: created.data.api_key.id } }, headers: session });
  const afterDelete = await client.GET('/api/v1/api-keys', { headers: { Authorization: \`Bearer \${key}\` } });
  const refusedWith: ListError | undefined = afterDelete.error?.error;
  return {
    registered: registered.response.status,
    email: registered.data.user.email,
    loggedIn: login.response.status,
    created: created.response.status,
    keyId: created.data.api_key.id,
    keyPrefix: created.data.api_key.key_prefix,
    listed: listed.data.map((apiKey) => ({ id: apiKey.id, lastUsedAt: apiKey.last_used_at })),
    deleted: deleted.response.status,
    afterDelete: afterDelete.response.status,
    refusedWith,
  };
}

// Never called: each call is a misuse the generated types must refuse, or they are too loose to help.
export function misuses(client: Client<paths>) {
  // @ts-expect-error password is required
  void client.POST('/api/v1/auth/register', { body: { email: 'ada@example.com' } });
  // @ts-expect-error name is a string
  void client.POST('/api/v1/api-keys', { body: { name: 1 } });
  // @ts-expect-error the key's id is a path parameter
  void client.DELETE('/api/v1/api-keys/{id}', {});
  // @ts-expect-error no such route
  void client.GET('/api/v1/keys');
}
`;

const TSCONFIG = {
  compilerOptions: {
    target: 'ES2022',
    module: 'ESNext',
    moduleResolution: 'bundler',
    lib: ['ES2022', 'DOM'],
    strict: true,
    noEmit: true,
    noUncheckedIndexedAccess: true,
    skipLibCheck: false,
    types: [],
  },
  files: ['client.ts', 'schema.d.ts'],
};

let server: ServerProcess;
let workDir: string;
beforeAll(async () => {
  const { binary, dir } = await installBinary();
  server = await ServerProcess.start(binary, { cwd: dir, env: { EXPOSE_DB: join(tempDir('expose-client-'), 'expose.db') } });
  mkdirSync(WORK_ROOT, { recursive: true });
  workDir = mkdtempSync(join(WORK_ROOT, 'run-'));
}, BUILD_TIMEOUT_MS);

afterAll(async () => {
  if (server) expect(await server.stop()).toBe(0);
  if (workDir) rmSync(workDir, { recursive: true, force: true });
  removeTempDirs();
});

/** Runs TypeScript's own compiler (the devDependency's CLI) on the program: its exit code and diagnostics. */
async function typeCheck(dir: string): Promise<{ exitCode: number; output: string }> {
  const proc = Bun.spawn([process.execPath, join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(dir, 'tsconfig.json')], {
    cwd: dir,
    stdout: 'pipe',
    stderr: 'pipe',
  });
  const [stdout, stderr, exitCode] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { exitCode, output: `${stdout}${stderr}`.trim() };
}

let generated: Promise<string> | undefined;
/** Generates the types from the document the binary serves and writes the program beside them, once. */
function generateClient(): Promise<string> {
  generated ??= (async () => {
    const document = (await (await server.fetch('/docs/json')).json()) as OpenAPI3;
    writeFileSync(join(workDir, 'schema.d.ts'), await openapiTS(document));
    writeFileSync(join(workDir, 'client.ts'), CLIENT_PROGRAM);
    writeFileSync(join(workDir, 'tsconfig.json'), JSON.stringify(TSCONFIG));
    return workDir;
  })();
  return generated;
}

describe('a client generated from /docs/json with openapi-typescript and openapi-fetch', () => {
  it('type-checks, and refuses the misuses, with strict settings', async () => {
    expect(await typeCheck(await generateClient())).toEqual({ exitCode: 0, output: '' });
  }, 60_000);

  it('registers, logs in, creates a key, lists keys with it and deletes it against the binary', async () => {
    const program = (await import(join(await generateClient(), 'client.ts'))) as {
      run: (baseUrl: string, email: string, password: string) => Promise<Record<string, unknown>>;
    };
    const email = 'generated-client@example.com';
    const result = await program.run(server.url, email, BINARY_TEST_PASSWORD);
    expect(result).toEqual({
      registered: 201,
      email,
      loggedIn: 200,
      created: 201,
      keyId: expect.any(String),
      keyPrefix: expect.stringMatching(/^exp_k1_[0-9a-f]{6}$/),
      // The list was read with the key itself, so it shows as used.
      listed: [{ id: result.keyId, lastUsedAt: expect.any(String) }],
      deleted: 204,
      afterDelete: 401,
      refusedWith: 'unauthorized',
    });
  }, 30_000);
});
