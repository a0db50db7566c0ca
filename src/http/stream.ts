// Sends a reply body produced piece by piece, in chunked encoding, writing the next piece
// only when the socket has taken the previous one: a large answer (every mailbox) then
// costs one piece of memory per client, not the whole answer, however slowly the client
// reads. A client that takes no piece for `drainTimeoutMs` is cut off.

import type { Socket } from 'node:net';
import { chunkPiece, lastChunk } from './codec.js';

/** Waits for 'drain'; false if the socket closed or `ms` passed first. */
function drained(socket: Socket, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.off('drain', onDrain);
      socket.off('close', onClose);
      resolve(ok);
    };
    const onDrain = () => done(true);
    const onClose = () => done(false);
    const timer = setTimeout(() => done(false), ms);
    socket.on('drain', onDrain);
    socket.on('close', onClose);
  });
}

/** True once every piece and the last chunk have left for the kernel. */
export async function sendChunked(socket: Socket, pieces: Iterable<string>, drainTimeoutMs = 30_000): Promise<boolean> {
  for (const piece of pieces) {
    if (socket.destroyed) return false;
    const framed = chunkPiece(piece);
    if (framed !== '' && !socket.write(framed) && !(await drained(socket, drainTimeoutMs))) return false;
  }
  if (socket.destroyed) return false;
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), drainTimeoutMs);
    socket.write(lastChunk, (err) => {
      clearTimeout(timer);
      resolve(err == null);
    });
  });
}
