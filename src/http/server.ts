// The HTTP listener (`http_listen`): a small HTTP/1.1 server (framing in http/codec.ts)
// on the same listener as every other door (net/listener.ts: connection cap with
// longest-idle eviction, idle timeout, request deadline), and a router over it. Routes
// are plain functions registered by the composition root (serve.ts): health, readiness
// (daemon/readiness.ts), metrics (http/metrics-route.ts), and the Dovecot auth policy and
// Lua lookup endpoints from their own modules.
//
// One request at a time per connection: reading stops while a request is answered and
// resumes once its reply has left for the kernel. node:http, used before, parsed every
// request of a read at once and queued their replies in memory until the client read
// them; a local client that pipelined `GET /metrics` on 200 connections and never read
// took the daemon to 2 GB and froze every door (issue 29). Here a connection holds at
// most one reply and one bounded request's bytes; a reply left unread past the request
// deadline, or input past the bound, closes it.

import type { Socket } from 'node:net';
import { errorMessage, type Logger } from '../log.js';
import { limitRepeats, type LimitedLogger } from '../log-limit.js';
import type { Metrics } from '../metrics.js';
import type { ListenAddress } from '../net/listen-address.js';
import { endConnection } from '../net/byte-connection.js';
import { systemClock, type Clock } from '../net/clock.js';
import { listen, type ConnectionControl, type UnixSocketOptions } from '../net/listener.js';
import { continueReply, isHeadError, MAX_HEADER_BYTES, parseRequestHead, replyHead, type RequestHead } from './codec.js';
import { sendChunked } from './stream.js';

export interface HttpRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  /** Header fields by lower-case name. */
  headers: Record<string, string | undefined>;
  body: Buffer;
}

export interface HttpResponse {
  status: number;
  /** An iterable is sent piece by piece as the client reads (src/http/stream.ts). */
  body: string | Buffer | Iterable<string>;
  contentType?: string;
}

export type Route = (req: HttpRequest) => HttpResponse | Promise<HttpResponse>;

export interface HttpLimits {
  maxConnections: number;
  maxBodyBytes: number;
  idleTimeoutMs: number;
  /**
   * The request deadline: a request must arrive in full, its route answer, and each piece
   * of its reply leave for the kernel, each within this; past it the connection closes.
   */
  requestTimeoutMs: number;
}

export interface HttpServer {
  readonly port: number | undefined;
  close(graceMs?: number): Promise<void>;
}

export function json(status: number, value: unknown): HttpResponse {
  return { status, body: JSON.stringify(value), contentType: 'application/json' };
}

/** The promise's value, or undefined when it has not settled within `ms`. */
function withDeadline<T>(p: Promise<T> | T, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  return Promise.race([Promise.resolve(p), late]).finally(() => clearTimeout(timer));
}

/** Writes `data` and resolves true once the kernel has taken it, false if the socket closed or `ms` passed first. */
export function writeFlushed(socket: Socket, data: string | Buffer, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    if (socket.destroyed) return resolve(false);
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.off('close', onClose);
      resolve(ok);
    };
    const onClose = () => done(false);
    const timer = setTimeout(() => done(false), ms);
    socket.once('close', onClose);
    socket.write(data, (err) => done(err == null));
  });
}

interface Shared {
  routes: Map<string, Route>;
  limits: HttpLimits;
  log: LimitedLogger;
  logger: Logger;
  metrics: Metrics;
}

/** The route's answer to one request; a failure or a missed deadline becomes a 5xx, never a throw. */
async function routeAnswer(head: RequestHead, body: Buffer, shared: Shared): Promise<HttpResponse & { close?: boolean }> {
  const { routes, limits, log, metrics } = shared;
  const path = head.target.split('?')[0];
  let url: URL;
  try {
    url = new URL(head.target, 'http://mailmapd');
  } catch {
    return { status: 400, body: 'bad request\n', close: true };
  }
  const route = routes.get(`${head.method} ${url.pathname}`);
  if (!route) {
    const known = routes.has(`GET ${url.pathname}`) || routes.has(`POST ${url.pathname}`);
    return known ? { status: 405, body: 'method not allowed\n' } : { status: 404, body: 'not found\n' };
  }
  try {
    const out = await withDeadline(
      route({ method: head.method, path: url.pathname, query: url.searchParams, headers: head.headers, body }),
      limits.requestTimeoutMs,
    );
    if (out !== undefined) return out;
    metrics.badInput.inc({ listener: 'http', reason: 'request_timeout' });
    log.warn('http request not answered within the request deadline', { path, timeout_ms: limits.requestTimeoutMs });
    return { status: 503, body: 'request deadline passed\n', close: true };
  } catch (err) {
    log.error('http request failed', { path, error: errorMessage(err) });
    return { status: 500, body: 'internal error\n' };
  }
}

/** Answers one request and resolves once the reply has left (true) or the connection is to close (false). */
async function serveRequest(socket: Socket, head: RequestHead, body: Buffer, shared: Shared): Promise<boolean> {
  const { limits, logger } = shared;
  const out = await routeAnswer(head, body, shared);
  const close = !head.keepAlive || out.close === true;
  if (out.status >= 400 && out.status !== 503 && out.status !== 404) logger.debug('http', { status: out.status, path: head.target.split('?')[0] });
  const type = out.contentType ?? 'text/plain; charset=utf-8';
  let sent: boolean;
  if (typeof out.body === 'string' || Buffer.isBuffer(out.body)) {
    const bytes = typeof out.body === 'string' ? Buffer.from(out.body) : out.body;
    sent = await writeFlushed(socket, Buffer.concat([Buffer.from(replyHead(out.status, type, bytes.length, close)), bytes]), limits.requestTimeoutMs);
  } else {
    socket.write(replyHead(out.status, type, undefined, close));
    sent = await sendChunked(socket, out.body, limits.requestTimeoutMs);
  }
  if (!sent && !socket.destroyed) {
    shared.metrics.badInput.inc({ listener: 'http', reason: 'unread_reply' });
    shared.log.warn('closing connection: reply not read within the request deadline', { listener: 'http', timeout_ms: limits.requestTimeoutMs });
    socket.destroy();
  }
  return sent && !close;
}

/** Replies with `status` to a request that cannot be served, then closes. */
function refuse(socket: Socket, status: 400 | 413 | 431 | 501, reason: string, shared: Shared): void {
  shared.metrics.badInput.inc({ listener: 'http', reason });
  const text = `${status === 413 ? 'request body too large' : status === 431 ? 'request head too large' : status === 501 ? 'not implemented' : 'bad request'}\n`;
  socket.write(replyHead(status, 'text/plain', text.length, true) + text);
  endConnection(socket);
}

// Long because it is one connection's state machine (buffer, busy, partial-request clock)
// and its three events (bytes, reply done, shutdown); each step is a short block.
function openConnection(socket: Socket, shared: Shared, clock: Clock): ConnectionControl {
  const { limits } = shared;
  // Input held at most: one request's head and body, plus one read taken while busy.
  const inputBound = MAX_HEADER_BYTES + limits.maxBodyBytes + 64 * 1024;
  let buf: Buffer = Buffer.alloc(0);
  let busy = false;
  let closing = false;
  let continued = false; // 100 Continue sent for the request being received
  let partialSince: number | undefined;
  let lastActive = clock.now();

  const reject = (status: 400 | 413 | 431 | 501, reason: string): void => {
    closing = true;
    if (!busy) {
      refuse(socket, status, reason, shared);
      return;
    }
    // A reply is on its way: a second one cannot be put in the middle of it.
    shared.metrics.badInput.inc({ listener: 'http', reason });
    socket.destroy();
  };
  const next = (): void => {
    if (busy || closing || socket.destroyed) return;
    const head = buf.length === 0 ? undefined : parseRequestHead(buf);
    if (head !== undefined && isHeadError(head)) {
      reject(head.error, head.error === 431 ? 'oversized' : 'malformed');
      return;
    }
    if (head !== undefined && head.bodyBytes > limits.maxBodyBytes) {
      reject(413, 'oversized');
      return;
    }
    if (head === undefined || buf.length < head.headBytes + head.bodyBytes) {
      partialSince = buf.length === 0 ? undefined : (partialSince ?? clock.now());
      if (head !== undefined && !continued && head.headers.expect?.toLowerCase() === '100-continue') {
        continued = true;
        socket.write(continueReply);
      }
      return;
    }
    const body = Buffer.from(buf.subarray(head.headBytes, head.headBytes + head.bodyBytes));
    buf = buf.subarray(head.headBytes + head.bodyBytes);
    busy = true;
    continued = false;
    partialSince = undefined;
    socket.pause();
    serveRequest(socket, head, body, shared).then((keep) => {
      busy = false;
      if (!keep || closing) return endConnection(socket);
      socket.resume();
      next();
    });
  };

  socket.on('data', (chunk: Buffer) => {
    lastActive = clock.now();
    if (closing) return;
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    if (buf.length > inputBound) reject(413, busy ? 'pipelined' : 'oversized');
    else next();
  });
  // The clocks: a request still incomplete past the deadline, or a connection with no
  // request and no byte for the idle timeout, is closed. One timer, checked a few times
  // per period (HTTP carries few requests; the socket doors arm nothing on their fast path).
  const period = Math.max(50, Math.min(1000, Math.floor(Math.min(limits.idleTimeoutMs, limits.requestTimeoutMs) / 4)));
  let timer: unknown;
  const tick = (): void => {
    if (socket.destroyed) return;
    const now = clock.now();
    if (partialSince !== undefined && now - partialSince >= limits.requestTimeoutMs) {
      shared.metrics.badInput.inc({ listener: 'http', reason: 'request_timeout' });
      shared.log.warn('closing connection: request not complete within the request deadline', { listener: 'http', timeout_ms: limits.requestTimeoutMs });
      socket.destroy();
      return;
    }
    if (!busy && partialSince === undefined && now - lastActive >= limits.idleTimeoutMs) {
      socket.destroy();
      return;
    }
    timer = clock.setTimeout(tick, period);
  };
  timer = clock.setTimeout(tick, period);
  socket.once('close', () => clock.clearTimeout(timer));

  socket.on('end', () => {
    // The client is done sending: finish what is in flight, then close.
    closing = true;
    if (!busy) endConnection(socket);
  });
  return {
    shutdown() {
      closing = true;
      if (!busy) endConnection(socket);
    },
    lastActive: () => lastActive,
    partialSince: () => partialSince,
    busy: () => busy,
  };
}

export async function serveHttp(
  address: ListenAddress,
  routes: Map<string, Route>,
  limits: HttpLimits,
  unix: UnixSocketOptions,
  logger: Logger,
  metrics: Metrics,
  /** The idle and request clocks (tests inject one that moves only when told). */
  clock: Clock = systemClock,
): Promise<HttpServer> {
  const shared: Shared = { routes, limits, log: limitRepeats(logger), logger, metrics };
  const events = {
    opened: () => {
      metrics.connectionsOpen.inc({ listener: 'http' });
      metrics.connectionsTotal.inc({ listener: 'http' });
    },
    closed: () => metrics.connectionsOpen.dec({ listener: 'http' }),
    refused: () => metrics.connectionsRefused.inc({ listener: 'http' }),
    evicted: () => metrics.connectionsEvicted.inc({ listener: 'http' }),
  };
  const listener = await listen(
    address,
    'http',
    (socket, ctx) => openConnection(socket, shared, ctx.clock),
    { maxConnections: limits.maxConnections, idleTimeoutMs: limits.idleTimeoutMs, requestTimeoutMs: limits.requestTimeoutMs },
    unix,
    logger,
    events,
    clock,
  );
  return { port: listener.port, close: (graceMs) => listener.close(graceMs) };
}
