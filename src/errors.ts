// The command line's exit codes and the errors that carry them. Scripts and Postfix-style
// callers act on the code alone, so each code means one thing: 1 is an answer ("no such
// entry", "wrong password"), never a crash.

export const ExitCode = {
  ok: 0,
  /** The entry asked for does not exist, or authentication failed. */
  notFound: 1,
  /** Bad arguments, bad input or a bad config: retrying the same command will not help. */
  usage: 2,
  /**
   * A bug or a state the code does not expect (sysexits' EX_SOFTWARE). Not 1, which a
   * script would read as "not found", and not 75, which would make it retry forever.
   */
  software: 70,
  /** The database or the daemon is unreachable: try again later (sysexits' EX_TEMPFAIL). */
  temp: 75,
} as const;

export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** Bad input from the person at the keyboard: one line on stderr, exit code 2. */
export class UsageError extends Error {}

/** A config file or environment that cannot be used: exit code 2, naming key and line. */
export class ConfigError extends UsageError {}

/** The entry a command names does not exist: exit code 1, like `postmap -q` finding nothing. */
export class NotFoundError extends Error {}

/** The database or daemon is unreachable: exit code 75, try again later. */
export class TempError extends Error {}

export function exitCodeFor(err: unknown): ExitCode {
  if (err instanceof UsageError) return ExitCode.usage;
  if (err instanceof NotFoundError) return ExitCode.notFound;
  if (err instanceof TempError) return ExitCode.temp;
  return ExitCode.software;
}
