/** Entry point of `expose-server` (and of `bun src/index.ts`): runs the command line and exits with its status. */
// First, before anything imports Elysia: see the module's comment.
import './production-mode.ts';
import { runCli } from './cli/main.ts';

/** Longest wait for output to drain once the command is done, before exiting anyway. */
const EXIT_DRAIN_MS = 2_000;

const status = await runCli(process.argv.slice(2));
process.exitCode = status;
// Normally nothing is left and the process ends now; if a stray handle lingers, do not hang on it.
setTimeout(() => process.exit(status), EXIT_DRAIN_MS).unref();
