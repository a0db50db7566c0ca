// Sends a response body produced piece by piece, writing the next piece only when the
// socket has taken the previous one: a large answer (every mailbox) then costs one piece
// of memory per client, not the whole answer, however slowly the client reads. A client
// that stops reading for drainTimeoutMs is cut off.

import type { ServerResponse } from 'node:http';

export async function sendStream(res: ServerResponse, pieces: Iterable<string>, drainTimeoutMs = 30_000): Promise<void> {
  for (const piece of pieces) {
    if (res.destroyed) return;
    if (!res.write(piece)) {
      const drained = await new Promise<boolean>((resolve) => {
        const done = (ok: boolean) => {
          clearTimeout(timer);
          res.off('drain', onDrain);
          res.off('close', onClose);
          resolve(ok);
        };
        const onDrain = () => done(true);
        const onClose = () => done(false);
        const timer = setTimeout(() => done(false), drainTimeoutMs);
        res.on('drain', onDrain);
        res.on('close', onClose);
      });
      if (!drained) {
        res.destroy();
        return;
      }
    }
  }
  res.end();
}
