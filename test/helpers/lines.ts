// Test clients and servers read their peers line by line; this is the one line splitter.

import type { Socket } from 'node:net';

/**
 * Calls `onLine` with each complete line the socket receives, without its terminator (`\n`,
 * or `\r\n`). The caller has set the socket's encoding (utf8, or latin1 for raw bytes).
 */
export function onLines(socket: Socket, onLine: (line: string) => void, terminator: '\n' | '\r\n' = '\n'): void {
  let partial = '';
  socket.on('data', (chunk: string) => {
    partial += chunk;
    let end: number;
    while ((end = partial.indexOf(terminator)) >= 0) {
      const line = partial.slice(0, end);
      partial = partial.slice(end + terminator.length);
      onLine(line);
    }
  });
}
