/** The client's one error type: its message is the single line printed (as `expose: <message>`) before exiting. */

/** Exit status for a failure: a refused key, a tunnel that cannot be registered, a server that cannot be reached. */
export const EXIT_FAILURE = 1;
/** Exit status for a bad command line or setting: "you called me wrong", as many tools do. */
export const EXIT_USAGE = 2;
/** Exit status after Ctrl-C at a prompt (128 + SIGINT), as shells report it. */
export const EXIT_INTERRUPTED = 130;

/** A failure the user can act on; printed as one line, never with a stack. */
export class ClientError extends Error {
  override name = 'ClientError';
  constructor(
    message: string,
    readonly exitCode: number = EXIT_FAILURE,
  ) {
    super(message);
  }
}

/** A bad command line or setting (exit status 2). */
export class UsageError extends ClientError {
  override name = 'UsageError';
  constructor(message: string) {
    super(message, EXIT_USAGE);
  }
}
