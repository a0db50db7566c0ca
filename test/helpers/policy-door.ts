// A bare Postfix policy door over a PolicyService, for tests that run the service in the
// test's own process (the daemon's own door, `policy_listen`, is the connection layer's).
// The protocol of SMTPD_POLICY_README: name=value lines, an empty line, one action= reply;
// the connection stays open.

import { connect, createServer, type Server } from 'node:net';
import type { PolicyService } from '../../src/smtpd-policy/types.js';
import { onLines } from './lines.js';

export interface TestDoor {
  port: number;
  /** Requests seen, in order. */
  requests: Map<string, string>[];
  close(): Promise<void>;
}

export async function startTestDoor(service: PolicyService, port = 0): Promise<TestDoor> {
  const requests: Map<string, string>[] = [];
  const sockets = new Set<import('node:net').Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    socket.setEncoding('utf8');
    let attrs = new Map<string, string>();
    onLines(socket, (line) => {
      if (line !== '') {
        const eq = line.indexOf('=');
        attrs.set(line.slice(0, eq), line.slice(eq + 1));
        return;
      }
      requests.push(attrs);
      socket.write(`action=${service.answer(attrs)}\n\n`);
      attrs = new Map();
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** One Postfix policy request to a door on a loopback port, as smtpd writes it: the action. */
export function askPolicy(port: number, attrs: Record<string, string>): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    s.setEncoding('utf8');
    s.on('error', reject);
    onLines(s, (line) => {
      if (!line.startsWith('action=')) return;
      s.end();
      resolve(line.slice('action='.length));
    });
    s.write(
      `${Object.entries({ request: 'smtpd_access_policy', ...attrs })
        .map(([k, v]) => `${k}=${v}\n`)
        .join('')}\n`,
    );
  });
}
