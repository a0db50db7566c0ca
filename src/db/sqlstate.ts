// The PostgreSQL error codes (SQLSTATE, Appendix A of the PostgreSQL manual) that mailmapd
// acts on, by their manual's names: one home, so that a reader sees a name, not a number.

export const sqlstate = {
  /** 23505: an INSERT or UPDATE met a unique key that exists. */
  uniqueViolation: '23505',
  /** 23503: a referenced row does not exist, or is still referenced. */
  foreignKeyViolation: '23503',
  /** 23514: a CHECK constraint refused the row. */
  checkViolation: '23514',
  /** 25006: a write in a read-only transaction (a standby, or a read-only role's default). */
  readOnlySqlTransaction: '25006',
  /** 40001: serialization failure; also a query a standby cancels for a recovery conflict. */
  serializationFailure: '40001',
  /** 42501: the role lacks a privilege. */
  insufficientPrivilege: '42501',
  /** 42P01: the table does not exist. */
  undefinedTable: '42P01',
  /** 57P01: the server is shutting down (admin shutdown). */
  adminShutdown: '57P01',
  /** 57P03: the server is starting up or in recovery and takes no connection yet. */
  cannotConnectNow: '57P03',
  /** 08006: the connection broke. */
  connectionFailure: '08006',
  /** 08001: the client could not establish the connection. */
  unableToConnect: '08001',
} as const;

/** The SQLSTATE of a node-postgres error, undefined for any other error. */
export function sqlstateOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * Whether an error is the connection's or the server's rather than the statement's: class
 * 08 (connection exception), 57P (operator intervention: shutdown, crash, starting up) and
 * 53 (insufficient resources). Such an error is worth retrying the same statement after.
 */
export function isConnectionLoss(code: string): boolean {
  return /^(08|57P|53)/.test(code);
}

/** A lost connection or a server going away (or no SQL error at all): the statement is worth a retry. */
export function isRetryable(err: unknown): boolean {
  const code = sqlstateOf(err);
  return code === undefined || isConnectionLoss(code);
}
