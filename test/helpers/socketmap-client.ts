// A minimal socketmap client over TCP or a UNIX socket, speaking netstrings as Postfix does:
// one request, then wait for its reply.

import { connect, type Socket } from 'node:net';

export interface SocketmapClient {
  query(map: string, key: string): Promise<string>;
  close(): void;
  socket: Socket;
}

export function socketmapClient(target: { port: number } | { path: string }): Promise<SocketmapClient> {
  return new Promise((resolve, reject) => {
    const socket = 'port' in target ? connect(target.port, '127.0.0.1') : connect(target.path);
    let buf = Buffer.alloc(0);
    const waiting: Array<{ resolve: (v: string) => void; reject: (e: Error) => void }> = [];
    socket.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const colon = buf.indexOf(':');
        if (colon < 0) return;
        const len = Number(buf.subarray(0, colon).toString());
        if (buf.length < colon + 1 + len + 1) return;
        const payload = buf.subarray(colon + 1, colon + 1 + len).toString();
        buf = buf.subarray(colon + 2 + len);
        waiting.shift()?.resolve(payload);
      }
    });
    socket.on('close', () => {
      for (const w of waiting.splice(0)) w.reject(new Error('connection closed'));
    });
    socket.once('error', reject);
    socket.once('connect', () =>
      resolve({
        socket,
        query(map, key) {
          const payload = Buffer.from(`${map} ${key}`);
          return new Promise((res, rej) => {
            waiting.push({ resolve: res, reject: rej });
            socket.write(Buffer.concat([Buffer.from(`${payload.length}:`), payload, Buffer.from(',')]));
          });
        },
        close: () => socket.end(),
      }),
    );
  });
}
