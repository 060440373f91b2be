/** Entry point: the `serve` command (default) and the operator commands. */
import { loadConfig, ConfigError } from './config.ts';
import { openDb } from './db/client.ts';
import { migrate } from './db/migrate.ts';
import { resolveJwtSecret } from './db/settings.ts';
import { createLogger } from './lib/logger.ts';
import { createApp } from './app.ts';

async function main(argv: string[]): Promise<number> {
  let config;
  try {
    config = loadConfig(process.env, argv);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`expose-server: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
  const logger = createLogger(config.logLevel);
  const handle = openDb(config.dbPath);
  migrate(handle.db);
  const jwtSecret = resolveJwtSecret(handle.db, config.jwtSecret);
  const app = createApp({ config, db: handle, jwtSecret, logger }).listen({ hostname: config.host, port: config.port });
  logger.info('listening', { url: `http://${config.host}:${app.server?.port}`, db: config.dbPath });
  return new Promise<number>(() => {});
}

process.exitCode = await main(process.argv.slice(2));
