/** Entry point of `expose`, the tunnel client (`dist/expose`, or `bun src/client/index.ts`): runs the command line and exits with its status. */
import { runCli } from './main.ts';

/** Longest wait for output to drain once the command is done, before exiting anyway. */
const EXIT_DRAIN_MS = 2_000;

const status = await runCli(process.argv.slice(2));
process.exitCode = status;
// Normally nothing is left and the process ends now; if a stray handle (a pooled local
// connection, stdin) lingers, do not hang on it.
setTimeout(() => process.exit(status), EXIT_DRAIN_MS).unref();
