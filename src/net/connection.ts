// One connection of a door, whatever its protocol: the layer between the transport
// (byte-connection.ts) and a door's codec and protocol. It owns what every door needs and
// none should write again:
//
// - Writes, and ONE output bound. Replies to one read leave in one write. While more than
//   OUTPUT_BOUND_BYTES (64 KiB) of replies wait for a client that does not read them, the
//   connection is not read; reading resumes when they have drained. A client that sends
//   faster than it reads therefore holds at most the bound plus the replies to one read of
//   input (at most 64 KiB of requests). For every door but socketmap those replies are a few
//   times the input; a socketmap read of 64 KiB can ask for thousands of 100 kB answers, so
//   past OUTPUT_HARD_CAP_BYTES (64 MiB) unsent the connection is closed (`reply_backlog`).
//   The cap is that high because a client that pipelines requests for large answers and
//   does read them (test/byte-connection.test.ts: 40 answers of 1 MB) must be served.
// - The clocks, on an injected Clock: idle (no byte from the client for idle_timeout
//   closes it) and the request deadline (a request whose first byte came request_timeout
//   ago and which is still incomplete closes it, however slowly bytes trickle in). One
//   timer per connection, moved only when a request is split across reads: the common
//   path — a whole request in one read — arms nothing.
// - Bad input: counted under a fixed label, logged (rate-limited), the replies to the good
//   requests before it sent, then the connection ended.
// - Graceful close: at shutdown the connection ends once no request is being answered and
//   none is half-received; requests after that are not read.
//
// A door is then a codec (bytes → requests, a Decoder) and a protocol (requests → replies,
// with its states named), and one line in daemon/listeners.ts.

import type { Socket } from 'node:net';
import type { Logger } from '../log.js';
import { limitRepeats } from '../log-limit.js';
import type { Metrics } from '../metrics.js';
import { openByteConnection } from './byte-connection.js';
import type { ConnectionContext, ConnectionControl, ConnectionHandler } from './listener.js';

/** Unsent reply bytes past which a connection is not read until they have drained. */
export const OUTPUT_BOUND_BYTES = 64 * 1024;
/** Unsent reply bytes past which a connection is closed: the replies to one read may not pass it. */
export const OUTPUT_HARD_CAP_BYTES = 64 * 1024 * 1024;

/** Why input was refused: `fault` is the metric label (a fixed set per door), `detail` a sentence for the log. */
export interface Fault {
  fault: string;
  detail: string;
}

/** A door's codec, one per connection: bytes in, requests out. */
export interface Decoder<R> {
  /**
   * Feeds `chunk[0, end)` (the buffer is reused after the call: copy what is kept) and hands
   * each complete request to `take`, in order. Returns the fault that makes the stream
   * unusable, or undefined.
   */
  push(chunk: Buffer, end: number, take: (request: R) => void): Fault | undefined;
  /** True when no request is partly received. */
  readonly idle: boolean;
}

/** What a protocol may do with its connection. */
export interface Conn {
  /** Queues a reply; replies to one read leave together. */
  send(data: string | Buffer): void;
  /** Bad input: counted, logged, replies so far sent, then the connection ends. */
  refuse(fault: string, detail: string): void;
  /** Sends what is queued, then ends the connection. */
  end(): void;
  /**
   * A request was answered (or given up) outside a read — an asynchronous answer, a
   * cancellation: reading may resume, and at shutdown the connection may end now.
   */
  settled(): void;
  /** True once the daemon is shutting down: answer what is in flight, start nothing long. */
  readonly closing: boolean;
  /** A UNIX-socket peer (only the socket's mode and group let it in), not loopback TCP. */
  readonly unix: boolean;
  /** The peer for a log line. */
  readonly peer: string;
}

/** A door's protocol on one connection. */
export interface Protocol<R> {
  readonly decoder: Decoder<R>;
  /** Answers one request, at once through conn.send or later (then conn.settled()). */
  handle(request: R): void;
  /** True while a request is being answered: never closed to make room; shutdown waits for it. */
  busy?(): boolean;
  /** True while the protocol holds as many requests as it will queue: not read until it is not. */
  full?(): boolean;
  /** Shutdown began (before the layer decides whether to end now). */
  shutdown?(): void;
  /** The connection is gone: release timers. */
  closed?(): void;
}

export interface Door<R> {
  /** The listener's name: the metric label and the log prefix. */
  name: string;
  logger: Logger;
  metrics: Metrics;
  /** The protocol for a new connection; it may send a greeting. */
  open(conn: Conn): Protocol<R>;
  /** 'stream' forces the transport's public-API path (tests). */
  mode?: 'handle' | 'stream';
}

/** open → closing (shutdown asked) → ending (FIN queued) → closed. */
type State = 'open' | 'closing' | 'ending' | 'closed';

/** The listener's handler for a door: every accepted socket becomes one connection of the layer. */
export function doorHandler<R>(door: Door<R>): ConnectionHandler {
  const log = limitRepeats(door.logger);
  return (socket, ctx) => openConnection(socket, ctx, door, log);
}

// Long because it is one connection's state as one closure (state, clocks, pending replies,
// read pausing), each step a short function over it.
function openConnection<R>(socket: Socket, ctx: ConnectionContext, door: Door<R>, log: ReturnType<typeof limitRepeats>): ConnectionControl {
  const { clock, limits } = ctx;
  const requestTimeoutMs = limits.requestTimeoutMs ?? 0;
  let state: State = 'open';
  let lastActive = clock.now();
  let partialSince: number | undefined;
  let reading = false; // inside a read: replies are gathered, not written
  let pending = '';
  let paused = false;
  let timer: unknown;
  let dueAt = Infinity;
  const unix = socket.remoteAddress === undefined;
  const peer = socket.remoteAddress ?? 'unix';

  const count = (fault: string) => door.metrics.badInput.inc({ listener: door.name, reason: fault });

  /** Writes the replies gathered during a read. */
  const flush = () => {
    if (pending === '') return;
    const out = pending;
    pending = '';
    transport.write(out);
  };

  /** Reading is held while the replies pass the bound or the protocol is full. */
  const updateReading = () => {
    if (state === 'ending' || state === 'closed') return;
    const hold = transport.queuedBytes > OUTPUT_BOUND_BYTES || protocol?.full?.() === true;
    if (hold === paused) return;
    paused = hold;
    if (hold) transport.pauseReading();
    else transport.resumeReading();
  };

  const destroy = () => {
    state = 'closed';
    socket.destroy();
  };

  const end = () => {
    if (state === 'ending' || state === 'closed') return;
    state = 'ending';
    flush();
    transport.end();
  };

  /** At shutdown: nothing being answered and nothing half-received. */
  const settledAtShutdown = () => {
    if (state === 'closing' && protocol?.busy?.() !== true && protocol?.decoder.idle !== false) end();
  };

  // The clocks: one timer, due at the earlier of the idle and the request deadline.
  const arm = (at: number) => {
    if (at >= dueAt || state === 'closed') return;
    if (timer !== undefined) clock.clearTimeout(timer);
    dueAt = at;
    timer = clock.setTimeout(tick, Math.max(0, Math.ceil(at - clock.now())));
  };
  const tick = () => {
    timer = undefined;
    dueAt = Infinity;
    if (state === 'closed') return;
    const now = clock.now();
    if (partialSince !== undefined && requestTimeoutMs > 0 && now - partialSince >= requestTimeoutMs) {
      count('request_timeout');
      log.warn('closing connection: request not complete within the request deadline', { listener: door.name, timeout_ms: requestTimeoutMs });
      return destroy();
    }
    if (now - lastActive >= limits.idleTimeoutMs) return destroy();
    arm(Math.min(lastActive + limits.idleTimeoutMs, partialSince !== undefined && requestTimeoutMs > 0 ? partialSince + requestTimeoutMs : Infinity));
  };

  let taken = 0;
  const take = (request: R) => {
    if (state !== 'open' && state !== 'closing') return;
    taken++;
    protocol!.handle(request);
    settledAtShutdown();
  };

  const onBytes = (buf: Buffer, end: number) => {
    if (state === 'ending' || state === 'closed') return;
    lastActive = clock.now();
    taken = 0;
    reading = true;
    const decoder = protocol!.decoder;
    const fault = decoder.push(buf, end, take);
    reading = false;
    if (fault !== undefined) return conn.refuse(fault.fault, fault.detail);
    if ((state as State) === 'closed') return; // the protocol's reply passed the hard cap
    flush();
    if (decoder.idle) partialSince = undefined;
    else if (taken > 0 || partialSince === undefined) {
      // A request begun in this read: its deadline runs from now.
      partialSince = lastActive;
      if (requestTimeoutMs > 0) arm(partialSince + requestTimeoutMs);
    }
    updateReading();
  };

  const conn: Conn = {
    send(data) {
      if (state === 'ending' || state === 'closed') return;
      if (reading && typeof data === 'string') pending += data;
      else {
        flush();
        transport.write(data);
      }
      if (pending.length + transport.queuedBytes > OUTPUT_HARD_CAP_BYTES) {
        count('reply_backlog');
        log.warn(`${door.name}: closing connection: too many unread replies`, { peer, limit: OUTPUT_HARD_CAP_BYTES });
        destroy();
      } else if (!reading) updateReading();
    },
    refuse(fault, detail) {
      if (state === 'ending' || state === 'closed') return;
      count(fault);
      log.warn(`${door.name}: closing connection on bad input`, { reason: fault, detail, peer });
      end();
    },
    end,
    settled() {
      updateReading();
      settledAtShutdown();
    },
    get closing() {
      return state !== 'open';
    },
    unix,
    peer,
  };

  const transport = openByteConnection(socket, { bytes: onBytes, drained: () => updateReading() }, door.mode);
  socket.once('close', () => {
    state = 'closed';
    if (timer !== undefined) clock.clearTimeout(timer);
    protocol?.closed?.();
  });
  // Assigned after the transport: a greeting goes out from open(), and no byte is read before it returns.
  let protocol: Protocol<R> | undefined;
  protocol = door.open(conn);
  arm(lastActive + limits.idleTimeoutMs);

  return {
    shutdown() {
      if (state !== 'open') return;
      state = 'closing';
      protocol?.shutdown?.();
      settledAtShutdown();
    },
    lastActive: () => lastActive,
    partialSince: () => partialSince,
    busy: () => protocol?.busy?.() === true,
  };
}
