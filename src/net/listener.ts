// Listening on the configured addresses with the limits every listener shares: loopback
// or UNIX sockets only (checked by the config), socket mode and group for UNIX sockets,
// a cap on open connections, and a close() that stops accepting and waits for open
// connections to finish. Each accepted socket goes to the door's handler — the connection
// layer (connection.ts), which runs its idle and request clocks from the limits and the
// clock handed over here.
//
// At the cap a new connection is not refused while some open one is idle: the idle
// connection quiet for longest is closed to make room. Every peer of a loopback or UNIX
// listener is a local process and Node cannot tell them apart (no SO_PEERCRED; on
// loopback every address is 127.0.0.1), so a per-peer share cannot keep one process from
// taking every slot. Dropping the longest-idle connection can: a process that holds
// thousands of idle connections loses its oldest ones to each newcomer, while Postfix's
// and Dovecot's clients, which send their request as soon as they connect, are served
// (and reconnect transparently when an idle connection of theirs was the one closed).

import { chmodSync, chownSync, lstatSync, unlinkSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { createServer, type Server, type Socket } from 'node:net';
import type { ListenAddress } from './listen-address.js';
import type { Logger } from '../log.js';
import { limitRepeats } from '../log-limit.js';
import { systemClock, type Clock } from './clock.js';

export interface ListenerLimits {
  maxConnections: number;
  /** Milliseconds of silence after which a connection is closed. */
  idleTimeoutMs: number;
  /**
   * Milliseconds from the first byte of a request to its last: a connection whose request
   * is still incomplete after this is closed, however many bytes trickle in meanwhile.
   */
  requestTimeoutMs?: number;
}

export interface UnixSocketOptions {
  mode: number;
  group: string;
}

export interface ListenerEvents {
  opened?(listener: string): void;
  closed?(listener: string): void;
  refused?(listener: string): void;
  /** An idle connection closed to make room for a new one at the cap. */
  evicted?(listener: string): void;
}

export interface Listener {
  readonly address: ListenAddress;
  /** The bound port for inet listeners (useful with port 0 in tests). */
  readonly port: number | undefined;
  readonly connections: ReadonlySet<Socket>;
  /** Stops accepting; resolves when every open connection has ended or `graceMs` passed. */
  close(graceMs?: number): Promise<void>;
}

/** What a connection tells the listener. */
export interface ConnectionControl {
  /** Called at shutdown: finish the request in flight, if any, then end the connection. */
  shutdown(): void;
  /** The clock's time of the last bytes received. */
  lastActive(): number;
  /** The clock's time of the first byte of a request not yet received in full, if any. */
  partialSince(): number | undefined;
  /** True while a request is being answered: such a connection is never closed to make room. */
  busy(): boolean;
}

/** What the listener hands each connection: the limits its clocks run on, and the clock. */
export interface ConnectionContext {
  limits: ListenerLimits;
  clock: Clock;
}

export type ConnectionHandler = (socket: Socket, ctx: ConnectionContext) => ConnectionControl;

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

// Long because binding, the connection cap and the graceful close share the set of open
// sockets; each part is a short block.
export async function listen(
  address: ListenAddress,
  name: string,
  handler: ConnectionHandler,
  limits: ListenerLimits,
  unix: UnixSocketOptions,
  logger: Logger,
  events: ListenerEvents = {},
  clock: Clock = systemClock,
): Promise<Listener> {
  const connections = new Set<Socket>();
  const controls = new WeakMap<Socket, ConnectionControl>();
  const log = limitRepeats(logger);

  /** The idle connection (no request in progress) quiet for longest, if any. */
  const longestIdle = (): Socket | undefined => {
    let best: Socket | undefined;
    let bestAt = Infinity;
    for (const s of connections) {
      const c = controls.get(s);
      if (c === undefined || c.busy() || c.partialSince() !== undefined) continue;
      const at = c.lastActive();
      if (at < bestAt) {
        bestAt = at;
        best = s;
      }
    }
    return best;
  };

  const server: Server = createServer({ noDelay: true, pauseOnConnect: false }, (socket) => {
    if (connections.size >= limits.maxConnections) {
      const victim = longestIdle();
      if (victim === undefined) {
        events.refused?.(name);
        log.warn('connection refused: too many connections, none idle', { listener: name, limit: limits.maxConnections });
        socket.destroy();
        return;
      }
      // Forget it now so that the new connection fits; its 'close' comes later.
      connections.delete(victim);
      events.evicted?.(name);
      log.warn('at max_connections: closed the longest-idle connection to make room', { listener: name, limit: limits.maxConnections });
      victim.destroy();
    }
    connections.add(socket);
    events.opened?.(name);
    socket.on('error', () => socket.destroy());
    socket.once('close', () => {
      connections.delete(socket);
      events.closed?.(name);
    });
    controls.set(socket, handler(socket, { limits, clock }));
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
          // Said, so that a shutdown held up by a connection shows in the log (and in tests).
          if (connections.size > 0) logger.warn('grace period over; closing the connections still open', { listener: name, count: connections.size });
          for (const s of connections) s.destroy();
        }, graceMs);
        timer.unref();
        server.close(() => {
          clearTimeout(timer);
          resolve();
        });
        // Keep-alive connections (Postfix holds one per process) would keep close() waiting
        // for the whole grace period: ask each protocol to end them once nothing is in flight.
        for (const s of connections) controls.get(s)?.shutdown();
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
