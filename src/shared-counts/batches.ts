// The write-back's batches of shared counts: the rows of one flush, written BATCH_ROWS at a
// time so that no statement grows with a flood. When a batch fails, its own write has
// already put its rows back (it knows whether the error is worth a retry); the rows after it
// were never sent, so they go back as they are, and the error goes on to the write-back.

/** Rows per statement. */
export const BATCH_ROWS = 5000;

export async function writeInBatches<T>(rows: readonly T[], write: (batch: T[]) => Promise<void>, unsent: (rest: T[]) => void): Promise<void> {
  for (let i = 0; i < rows.length; i += BATCH_ROWS) {
    try {
      await write(rows.slice(i, i + BATCH_ROWS));
    } catch (err) {
      unsent(rows.slice(i + BATCH_ROWS));
      throw err;
    }
  }
}
