// Listening on the configured addresses with the limits every listener shares: loopback
// or UNIX sockets only (checked by the config), socket mode and group for UNIX sockets,
// a cap on open connections, an idle timeout, and a close() that stops accepting and
// waits for open connections to finish. Protocols plug in a per-connection handler and
// know nothing of sockets' life cycle.

import { performance } from 'node:perf_hooks';
import { chmodSync, chownSync, lstatSync, unlinkSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { createServer, type Server, type Socket } from 'node:net';
import type { ListenAddress } from '../listen.js';
import type { Logger } from '../log.js';

export interface ListenerLimits {
  maxConnections: number;
  /** Milliseconds of silence after which a connection is closed. */
  idleTimeoutMs: number;
}

export interface UnixSocketOptions {
  mode: number;
  group: string;
}

export interface ListenerEvents {
  opened?(listener: string): void;
  closed?(listener: string): void;
  refused?(listener: string): void;
}

export interface Listener {
  readonly address: ListenAddress;
  /** The bound port for inet listeners (useful with port 0 in tests). */
  readonly port: number | undefined;
  readonly connections: ReadonlySet<Socket>;
  /** Stops accepting; resolves when every open connection has ended or `graceMs` passed. */
  close(graceMs?: number): Promise<void>;
}

/**
 * Sends what is queued and a FIN, then closes the socket without waiting for the peer's
 * FIN. Postfix and Dovecot processes keep idle connections they only read on their next
 * request: a half-close alone left each of them open until the shutdown grace ran out.
 */
export function endConnection(socket: Socket): void {
  socket.end(() => socket.destroy());
}

/** What a protocol tells the listener about one connection. */
export interface ConnectionControl {
  /** Called at shutdown: finish the request in flight, if any, then end the connection. */
  shutdown(): void;
  /**
   * performance.now() of the connection's last request, for protocols that read past
   * net.Socket's stream layer (which is what refreshes its idle timer).
   */
  lastActive?(): number;
}

export type ConnectionHandler = (socket: Socket) => ConnectionControl | undefined;

function groupId(group: string): number {
  if (/^\d+$/.test(group)) return Number(group);
  const line = execFileSync('getent', ['group', group], { encoding: 'utf8' });
  const gid = Number(line.split(':')[2]);
  if (!Number.isInteger(gid)) throw new Error(`unknown group ${group}`);
  return gid;
}

/** Removes a socket left behind by a previous run; refuses to replace anything else. */
export function removeStaleSocket(path: string): void {
  try {
    const st = lstatSync(path);
    if (!st.isSocket()) throw new Error(`${path} exists and is not a socket; refusing to replace it`);
    unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/** Mode and group from `unix_socket_mode`/`unix_socket_group`: Dovecot and Postfix must connect. */
export function applySocketPermissions(path: string, unix: UnixSocketOptions): void {
  chmodSync(path, unix.mode);
  if (unix.group !== '') chownSync(path, process.getuid?.() ?? 0, groupId(unix.group));
}

// Long because binding, the connection cap, idle timeouts and the graceful close share the
// set of open sockets; each part is a short block.
export async function listen(
  address: ListenAddress,
  name: string,
  handler: ConnectionHandler,
  limits: ListenerLimits,
  unix: UnixSocketOptions,
  logger: Logger,
  events: ListenerEvents = {},
): Promise<Listener> {
  const connections = new Set<Socket>();
  const controls = new WeakMap<Socket, ConnectionControl>();
  const server: Server = createServer({ noDelay: true, pauseOnConnect: false }, (socket) => {
    if (connections.size >= limits.maxConnections) {
      events.refused?.(name);
      logger.warn('connection refused: too many connections', { listener: name, limit: limits.maxConnections });
      socket.destroy();
      return;
    }
    connections.add(socket);
    events.opened?.(name);
    socket.setTimeout(limits.idleTimeoutMs);
    socket.on('timeout', () => {
      const last = controls.get(socket)?.lastActive?.();
      const quiet = last === undefined ? Infinity : performance.now() - last;
      if (quiet < limits.idleTimeoutMs) socket.setTimeout(Math.ceil(limits.idleTimeoutMs - quiet));
      else socket.destroy();
    });
    socket.on('error', () => socket.destroy());
    socket.once('close', () => {
      connections.delete(socket);
      events.closed?.(name);
    });
    const control = handler(socket);
    if (control) controls.set(socket, control);
  });
  server.maxConnections = limits.maxConnections + 16; // the kernel-level backstop; we refuse politely first

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    if (address.kind === 'unix') {
      removeStaleSocket(address.path);
      server.listen({ path: address.path, backlog: 511 }, () => resolve());
    } else {
      server.listen({ host: address.host, port: address.port, backlog: 511 }, () => resolve());
    }
  });
  server.on('error', (err) => logger.error('listener error', { listener: name, address: address.text, error: err.message }));

  if (address.kind === 'unix') applySocketPermissions(address.path, unix);
  const bound = server.address();
  const port = typeof bound === 'object' && bound !== null ? bound.port : undefined;

  return {
    address,
    port,
    connections,
    async close(graceMs = 5000) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          for (const s of connections) s.destroy();
        }, graceMs);
        timer.unref();
        server.close(() => {
          clearTimeout(timer);
          resolve();
        });
        // Keep-alive connections (Postfix holds one per process) would keep close() waiting
        // for the whole grace period: ask each protocol to end them once nothing is in flight.
        for (const s of connections) {
          const control = controls.get(s);
          if (control) control.shutdown();
          else endConnection(s);
        }
      });
      if (address.kind === 'unix') {
        try {
          unlinkSync(address.path);
        } catch {
          /* already gone */
        }
      }
    },
  };
}
