/**
 * The P5 baseline: the smallest Elysia server, compiled by the bench into a single binary with the
 * same build options as dist/expose-server. `hello-binary --port N` answers GET /health with 200.
 */
import { Elysia } from 'elysia';

const portAt = process.argv.indexOf('--port');
const port = portAt > 0 ? Number(process.argv[portAt + 1]) : 3000;
new Elysia().get('/health', () => ({ status: 'ok' })).listen({ hostname: '127.0.0.1', port });
