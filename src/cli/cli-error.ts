/** The one error type of the command line: its message is the single line printed before exiting. */

/** Exit status for a bad command line or setting (as many tools do, 2 is "you called me wrong"). */
export const EXIT_USAGE = 2;
/** Exit status for an operation that failed. */
export const EXIT_FAILURE = 1;

/** A failure the operator can act on; printed as `expose-server: <message>` with no stack. */
export class CliError extends Error {
  override name = 'CliError';
  constructor(
    message: string,
    readonly exitCode: number = EXIT_FAILURE,
  ) {
    super(message);
  }
}
