/**
 * The P5b floor: what any server on this stack that answers from the product's database loads before
 * its first answer, and nothing of the product's own. Elysia, drizzle with the product's tables, and
 * the database opened as the product opens it (src/db/client.ts: WAL, the PRAGMAs, drizzle on top);
 * one Elysia route. Compiled by the bench with the same options as dist/expose-server.
 * `stack-binary --port N --db FILE` answers GET /health with 200 once the database answers a query.
 */
import { Elysia } from 'elysia';
import { openDb } from '../../src/db/client.ts';

const argument = (name: string) => {
  const at = process.argv.indexOf(name);
  return at > 0 ? process.argv[at + 1] : undefined;
};
const { sqlite } = openDb(argument('--db') ?? ':memory:');
sqlite.query('SELECT 1').get();
new Elysia().get('/health', () => ({ status: 'ok' })).listen({ hostname: '127.0.0.1', port: Number(argument('--port') ?? 3000) });
