/**
 * What `image-prefetcher` exit statuses mean. The same table is in `--help` and the README.
 *
 * @module
 */

/** Exit statuses of the subcommands (`CannotListen` is `aggregate-metrics`' only). */
export const ExitCode = Object.freeze({
  /** Every image is on the node, or some failed and `--strict` was not given. */
  Ok: 0,
  /** Some images are not on the node and `--strict` was given. */
  ImagesFailed: 1,
  /** `aggregate-metrics` could not listen on one of its ports. */
  CannotListen: 1,
  /** Bad invocation: a flag, the image list, a line of it, or the docker config. */
  InvalidInput: 2,
  /** The container runtime did not answer on its socket in time. */
  RuntimeUnreachable: 3,
  /** The startup taint could not be removed; the kubelet restarts the container to try again. */
  StartupTaintKept: 4,
  /** Stopped by SIGINT (128 + 2). */
  Interrupted: 130,
  /** Stopped by SIGTERM (128 + 15). */
  Terminated: 143,
});

/** The run was stopped by a signal; `exitCode` is 128 + the signal's number. */
export class InterruptedError extends Error {
  /** The exit status that tells which signal stopped the run. */
  readonly exitCode: number;

  /** Creates the error for a run stopped by `signal`. */
  constructor(readonly signal: "SIGINT" | "SIGTERM") {
    super(`the run was stopped by ${signal}`);
    this.name = "InterruptedError";
    this.exitCode = signal === "SIGTERM" ? ExitCode.Terminated : ExitCode.Interrupted;
  }
}

/** A bad invocation: the message is one sentence naming the input and the fix. */
export class InvalidInputError extends Error {
  /** Creates the error with a sentence a user can act on. */
  constructor(message: string) {
    super(message);
    this.name = "InvalidInputError";
  }
}
