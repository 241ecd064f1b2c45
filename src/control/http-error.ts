/** An API error with its HTTP status (the CLI prints the message as one line). */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}
