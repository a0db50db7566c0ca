// The HTTP listener (`http_listen`): a small router over node:http with the limits every
// listener has — bounded bodies, header and request timeouts, a connection cap. Routes
// are plain functions registered by the composition root (serve.ts): health, readiness
// (daemon/readiness.ts), metrics, and the Dovecot auth policy and Lua lookup endpoints
// from their own modules.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { ListenAddress } from '../net/listen-address.js';
import { performance } from 'node:perf_hooks';
import { errorMessage, type Logger } from '../log.js';
import { limitRepeats, type LimitedLogger } from '../log-limit.js';
import type { Metrics } from '../metrics.js';
import { sendStream } from './stream.js';
import { applySocketPermissions, removeStaleSocket, type UnixSocketOptions } from '../net/listener.js';

export interface HttpRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
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
}

export interface HttpServer {
  readonly port: number | undefined;
  close(graceMs?: number): Promise<void>;
}

export function json(status: number, value: unknown): HttpResponse {
  return { status, body: JSON.stringify(value), contentType: 'application/json' };
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > limit) return resolve(undefined);
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        resolve(undefined);
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** One request: its route, a bounded body, the route's answer; a failure is logged once, never thrown. */
async function answer(
  req: IncomingMessage,
  res: ServerResponse,
  routes: Map<string, Route>,
  limits: HttpLimits,
  log: LimitedLogger,
  logger: Logger,
  metrics: Metrics,
): Promise<void> {
  let status = 500;
  try {
    const url = new URL(req.url ?? '/', 'http://mailmapd');
    const route = routes.get(`${req.method} ${url.pathname}`);
    if (!route) {
      status = routes.has(`GET ${url.pathname}`) || routes.has(`POST ${url.pathname}`) ? 405 : 404;
      res.writeHead(status, { 'content-type': 'text/plain' }).end(status === 404 ? 'not found\n' : 'method not allowed\n');
      return;
    }
    const body = await readBody(req, limits.maxBodyBytes);
    if (body === undefined) {
      metrics.badInput.inc({ listener: 'http', reason: 'oversized' });
      status = 413;
      res.writeHead(413, { 'content-type': 'text/plain', connection: 'close' }).end('request body too large\n');
      return;
    }
    const out = await route({ method: req.method ?? 'GET', path: url.pathname, query: url.searchParams, headers: req.headers, body });
    status = out.status;
    res.writeHead(out.status, { 'content-type': out.contentType ?? 'text/plain; charset=utf-8' });
    if (typeof out.body === 'string' || Buffer.isBuffer(out.body)) res.end(out.body);
    else await sendStream(res, out.body);
  } catch (err) {
    // A client that went away mid-request is its own business, not the daemon's error.
    if (req.destroyed || res.destroyed) log.warn('http request aborted by the client', { path: req.url?.split('?')[0], error: errorMessage(err) });
    else log.error('http request failed', { path: req.url?.split('?')[0], error: errorMessage(err) });
    if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' }).end('internal error\n');
    else res.destroy();
  } finally {
    if (status >= 400 && status !== 503 && status !== 404) logger.debug('http', { status, path: req.url?.split('?')[0] });
  }
}

/**
 * The cap on open connections, and the idle deadline of a connection that never starts a
 * request. Node closes a connection that never sends a byte only at its next 30-s check,
 * which let idle connections hold the cap shut; at the cap the longest-idle connection
 * without a request in progress makes room instead.
 */
function boundConnections(server: Server, limits: HttpLimits, log: LimitedLogger, metrics: Metrics): { started(s: Socket): void; ended(s: Socket): void } {
  const sockets = new Set<Socket>();
  // Per connection: performance.now() of its last request's end (or of its opening), and
  // the requests in progress.
  const lastActive = new WeakMap<Socket, number>();
  const inFlight = new WeakMap<Socket, number>();
  /** The connection with no request in progress that has been quiet longest, if any. */
  const longestIdle = (): Socket | undefined => {
    let best: Socket | undefined;
    let bestAt = Infinity;
    for (const s of sockets) {
      if ((inFlight.get(s) ?? 0) > 0) continue;
      const at = lastActive.get(s) ?? 0;
      if (at < bestAt) {
        bestAt = at;
        best = s;
      }
    }
    return best;
  };

  server.on('connection', (s: Socket) => {
    if (sockets.size >= limits.maxConnections) {
      const victim = longestIdle();
      if (victim === undefined) {
        metrics.connectionsRefused.inc({ listener: 'http' });
        log.warn('connection refused: too many connections, none idle', { listener: 'http', limit: limits.maxConnections });
        s.destroy();
        return;
      }
      sockets.delete(victim);
      metrics.connectionsEvicted.inc({ listener: 'http' });
      log.warn('at max_connections: closed the longest-idle connection to make room', { listener: 'http', limit: limits.maxConnections });
      victim.destroy();
    }
    lastActive.set(s, performance.now());
    // A connection that has not started a request within the idle timeout is closed
    // (keepAliveTimeout covers the time between requests; headersTimeout a started one).
    const idle = setTimeout(() => {
      if (!lastActive.has(s) || inFlight.has(s)) return;
      s.destroy();
    }, limits.idleTimeoutMs);
    idle.unref();
    sockets.add(s);
    metrics.connectionsOpen.inc({ listener: 'http' });
    metrics.connectionsTotal.inc({ listener: 'http' });
    s.once('close', () => {
      clearTimeout(idle);
      sockets.delete(s);
      metrics.connectionsOpen.dec({ listener: 'http' });
    });
  });

  return {
    started: (sock) => inFlight.set(sock, (inFlight.get(sock) ?? 0) + 1),
    ended: (sock) => {
      inFlight.set(sock, (inFlight.get(sock) ?? 1) - 1);
      lastActive.set(sock, performance.now());
    },
  };
}

export async function serveHttp(
  address: ListenAddress,
  routes: Map<string, Route>,
  limits: HttpLimits,
  unix: UnixSocketOptions,
  logger: Logger,
  metrics: Metrics,
): Promise<HttpServer> {
  const log = limitRepeats(logger);
  // connectionsCheckingInterval: how often Node enforces headersTimeout and requestTimeout
  // (default 30 s, which made them 30 s late).
  const server: Server = createServer(
    { keepAlive: true, headersTimeout: 10_000, requestTimeout: 30_000, connectionsCheckingInterval: 1000 },
    async (req, res) => {
      connections.started(req.socket);
      res.once('close', () => connections.ended(req.socket));
      await answer(req, res, routes, limits, log, logger, metrics);
    },
  );
  server.keepAliveTimeout = limits.idleTimeoutMs;
  const connections = boundConnections(server, limits, log, metrics);

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    if (address.kind === 'unix') {
      removeStaleSocket(address.path);
      server.listen(address.path, resolve);
    } else server.listen(address.port, address.host, resolve);
  });
  if (address.kind === 'unix') applySocketPermissions(address.path, unix);
  const bound = server.address();
  return {
    port: typeof bound === 'object' && bound !== null ? bound.port : undefined,
    close(graceMs = 5000) {
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
        setTimeout(() => server.closeAllConnections(), graceMs).unref();
      });
    },
  };
}
