/**
 * The error of a bad `deploy` invocation.
 *
 * @module
 */

/**
 * A bad `deploy` input (argument, flag or option): the message is one sentence naming the input
 * and the fix. Nothing has been printed when it is thrown, so no manifest is ever half-written.
 */
export class DeployInputError extends Error {
  /** Creates the error with a sentence a user can act on. */
  constructor(message: string) {
    super(message);
    this.name = "DeployInputError";
  }
}
