/**
 * Revocation in the middle of a download, with real processes: the key deleted through the API, or the
 * user deleted by the operator CLI (another process on the same database file). The visitor's download
 * is cut, and the `expose` process exits with status 1 and one clear line within 1 s.
 */
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { cleanUp } from '../client/process.ts';
import { Arrivals, type E2EClient, type E2EServer, generatedBody, type GeneratedBody, startClient, startE2EServer, withTimeout } from './harness.ts';

/** The contract: a revoked key or a deleted user ends its tunnels within 1 s. */
const REVOCATION_LIMIT_MS = 1000;
const REVOKED_LINE = 'expose: API key revoked\n';

const downloads = new Arrivals<GeneratedBody>();
let origin: ReturnType<typeof Bun.serve>;
let server: E2EServer;

beforeAll(async () => {
  origin = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    idleTimeout: 0,
    fetch(req) {
      // A download that never ends by itself.
      const body = generatedBody(Number.POSITIVE_INFINITY);
      downloads.add(new URL(req.url).searchParams.get('id') ?? '', body);
      return new Response(body.stream);
    },
  });
  server = await startE2EServer();
});

afterAll(async () => {
  cleanUp();
  origin?.stop(true);
  expect(await server?.stop()).toBe('');
});

/** A visitor's download under way on `subdomain`: it has received bytes and keeps reading until the body ends or breaks. */
async function downloadUnderWay(subdomain: string, id: string): Promise<{ ended: Promise<{ error: string | undefined; bytes: number }>; bytes: () => number }> {
  const res = await server.visit(subdomain, `/download?id=${id}`);
  expect(res.status).toBe(200);
  let bytes = 0;
  let gotBytes!: () => void;
  const firstBytes = new Promise<void>((resolve) => {
    gotBytes = resolve;
  });
  const ended = (async () => {
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        bytes += chunk.byteLength;
        gotBytes();
      }
      return { error: undefined, bytes };
    } catch (error) {
      return { error: String(error), bytes };
    }
  })();
  await withTimeout(firstBytes, 'the first bytes of the download');
  await downloads.when(id);
  return { ended, bytes: () => bytes };
}

/**
 * Runs `revoke` (resolving once the revocation is answered or done) while a download streams through
 * `client`; returns how long after that the client process had exited, and checks the rest.
 */
async function revokeDuringDownload(client: E2EClient, subdomain: string, id: string, revoke: () => Promise<void>): Promise<number> {
  const download = await downloadUnderWay(subdomain, id);
  await revoke();
  const answeredAtMs = performance.now();
  const exitCode = await client.child.exited;
  const exitedAfterMs = performance.now() - answeredAtMs;
  await client.stderr.ended;

  expect(exitCode).toBe(1);
  expect(client.stderr.text).toBe(REVOKED_LINE);
  expect(client.stdout.lines.map((line) => JSON.parse(line))).toContainEqual(expect.objectContaining({ event: 'state', state: 'Error', detail: 'API key revoked' }));
  // The body never ends by itself, so any end is the cut; it comes with the tunnel's end.
  const ended = await withTimeout(download.ended, 'the visitor download to be cut');
  expect(ended.bytes).toBeGreaterThan(0);
  expect(ended.error).toBeDefined();
  // No grace after a revocation: the name is free at once.
  const after = await server.visit(subdomain, '/after', { headers: { accept: 'application/json' } });
  expect(after.status).toBe(404);
  expect(after.headers.get('x-expose-error')).toBe('tunnel_not_found');
  return exitedAfterMs;
}

describe('revocation in the middle of a download', () => {
  it('cuts the download and stops the client (exit 1, "API key revoked") within 1 s of the key deletion being answered, three times over', async () => {
    const user = await server.newUser();
    const latencies: number[] = [];
    for (let round = 1; round <= 3; round++) {
      const key = await server.newKey(user.token);
      const subdomain = `revoke-key-${round}`;
      const client = await startClient(server, key.key, subdomain, origin.port!);
      const ms = await revokeDuringDownload(client, subdomain, subdomain, async () => {
        expect((await server.api('DELETE', `/api/v1/api-keys/${key.keyId}`, { credential: user.token })).status).toBe(204);
      });
      latencies.push(ms);
    }
    console.log(`[e2e] key deletion → client exited after ${latencies.map((ms) => `${Math.round(ms)} ms`).join(', ')} (limit ${REVOCATION_LIMIT_MS} ms)`);
    for (const ms of latencies) expect(ms).toBeLessThanOrEqual(REVOCATION_LIMIT_MS);
  });

  it('cuts the download and stops the client within 1 s of `expose-server user delete` (another process) finishing', async () => {
    const user = await server.newUser();
    const client = await startClient(server, user.key, 'revoke-user', origin.port!);
    let cli: Awaited<ReturnType<E2EServer['cli']>> | undefined;
    let cliMs = 0;
    const ms = await revokeDuringDownload(client, 'revoke-user', 'revoke-user', async () => {
      const startedMs = performance.now();
      cli = await server.cli(['user', 'delete', user.email]);
      cliMs = performance.now() - startedMs;
    });
    // Counted from the CLI's exit: the deletion is committed by then, and nothing outside it shows the commit earlier.
    console.log(`[e2e] user delete (CLI, which ran ${Math.round(cliMs)} ms) → client exited ${Math.round(ms)} ms after the CLI did (limit ${REVOCATION_LIMIT_MS} ms)`);
    expect(cli).toMatchObject({ exitCode: 0 });
    expect(ms).toBeLessThanOrEqual(REVOCATION_LIMIT_MS);
  });
});
