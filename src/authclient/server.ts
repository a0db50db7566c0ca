// The Dovecot auth-client protocol server on `auth_listen`, for Postfix's
// `smtpd_sasl_type = dovecot` and `doveadm auth test -a`. One state machine per connection:
// greeting → the client's VERSION → any number of concurrent AUTH requests, each driven by
// its mechanism (mechanisms.ts) until the authenticator answers. Bad input closes the
// connection (never an OK); failed logins are answered after a delay, with a timer, so
// other requests on this and other connections go on meanwhile.

import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Socket } from 'node:net';
import type { AuthContext, AuthOutcome, Authenticator } from '../auth/types.js';
import { errorMessage, type Logger } from '../log.js';
import { limitRepeats } from '../log-limit.js';
import { secondsSince, type Metrics, type Result } from '../metrics.js';
import { endConnection, type ConnectionControl, type ConnectionHandler } from '../net/listener.js';
import {
  createLineSplitter,
  decodeBase64,
  parseClientLine,
  serializeHandshake,
  serializeReply,
  type AuthClientFault,
  type AuthParams,
  type ServerReply,
} from './codec.js';
import { bearerMechanisms, mechanisms, type Mechanism, type MechStep } from './mechanisms.js';

export interface AuthClientDeps {
  authenticator: Authenticator;
  logger: Logger;
  metrics: Metrics;
  /** Delay before a FAIL (Dovecot's auth_failure_delay); skipped for `no-penalty`. */
  failureDelayMs: number;
  /** Longest accepted line; a longer one drops the connection. */
  maxRequestBytes: number;
  /** Offer OAUTHBEARER and XOAUTH2 (`oauth2_issuer` is set). */
  bearer?: boolean;
}

/** Requests one connection may have open at once; Postfix and doveadm use one at a time. */
const MAX_REQUESTS_PER_CONNECTION = 128;
/** A request waiting for the client's CONT is forgotten after this (Dovecot: 150 s). */
const STALE_REQUEST_MS = 150_000;
const LISTENER = 'auth';
/**
 * Unsent reply bytes past which the connection is not read until they have drained. A
 * client that sends (CONT for unknown ids, say) without reading its answers then stops
 * being read: what it costs the daemon stays near this plus the replies to one read of
 * input (at most 64 KiB in, about 5 bytes out per byte in), ≤ 512 KiB per connection.
 */
export const MAX_PENDING_OUTPUT_BYTES = 64 * 1024;

interface Request {
  id: number;
  mechName: string;
  mech: Mechanism;
  params: AuthParams;
  /** waiting: for the client's CONT; checking: the authenticator is busy; delaying: a FAIL is on its timer. */
  state: 'waiting' | 'checking' | 'delaying';
  timer?: NodeJS.Timeout;
  /** The FAIL line held back by the failure delay. */
  held?: string;
}

let nextCuid = 1;

function resultLabel(o: AuthOutcome): Result {
  return o.result === 'ok' ? 'ok' : o.result === 'temp' ? 'temp' : 'fail';
}

// Long because it is the per-connection state machine as one closure (requests, the
// handshake state, the shutdown flag); each step inside is a short function.
export function createAuthClientHandler(deps: AuthClientDeps): ConnectionHandler {
  const { authenticator, logger, metrics } = deps;
  const log = limitRepeats(logger);
  const offered = deps.bearer ? { ...mechanisms, ...bearerMechanisms } : mechanisms;

  return (socket: Socket): ConnectionControl => {
    const requests = new Map<number, Request>();
    const splitter = createLineSplitter(deps.maxRequestBytes);
    let clientMinor: number | undefined;
    let closing = false;
    let dead = false;
    let lastActive = performance.now();
    let partialSince: number | undefined;
    let throttled = false;

    /** Every reply goes through here: past the bound, reading stops until the client has read. */
    const write = (line: string) => {
      if (dead) return;
      socket.write(line);
      if (!throttled && socket.writableLength > MAX_PENDING_OUTPUT_BYTES) {
        throttled = true;
        socket.pause();
        socket.once('drain', () => {
          throttled = false;
          if (!dead) socket.resume();
        });
      }
    };

    const send = (reply: ServerReply) => write(serializeReply(reply));

    /** Ends the connection at shutdown once nothing is being checked. */
    const maybeEnd = () => {
      if (closing && !dead && ![...requests.values()].some((r) => r.state === 'checking')) {
        dead = true;
        endConnection(socket);
      }
    };

    const drop = (fault: AuthClientFault, reason: string) => {
      if (dead) return;
      metrics.badInput.inc({ listener: LISTENER, reason: fault });
      log.warn('auth client: closing connection', { reason });
      dead = true;
      socket.destroy();
    };

    const forget = (req: Request) => {
      if (req.timer) clearTimeout(req.timer);
      requests.delete(req.id);
    };

    /** A FAIL after the failure delay (or at once with no-penalty), without blocking anything. */
    const failLater = (req: Request, reply: ServerReply) => {
      const line = serializeReply(reply);
      if (req.params.noPenalty || deps.failureDelayMs <= 0 || closing) {
        forget(req);
        write(line);
        maybeEnd();
        return;
      }
      req.state = 'delaying';
      req.held = line;
      req.timer = setTimeout(() => {
        forget(req);
        write(line);
      }, deps.failureDelayMs);
      maybeEnd();
    };

    const check = (req: Request, login: string, password: string, bearer: boolean) => {
      req.state = 'checking';
      const ctx: AuthContext = { service: req.params.service, secured: req.params.secured, noPenalty: req.params.noPenalty };
      if (bearer) ctx.bearer = true;
      if (req.params.rip !== undefined) ctx.remoteIp = req.params.rip;
      if (req.params.lip !== undefined) ctx.localIp = req.params.lip;
      const started = process.hrtime.bigint();
      authenticator.authenticate(login, password, ctx).then(
        (outcome) => finish(req, login, outcome, started),
        (err: unknown) => finish(req, login, { result: 'temp', why: errorMessage(err) }, started),
      );
    };

    const finish = (req: Request, login: string, outcome: AuthOutcome, started: bigint) => {
      const seconds = secondsSince(started);
      metrics.lookupDuration.observe({ protocol: 'auth', map: req.mechName.toLowerCase(), result: resultLabel(outcome) }, seconds);
      if (requests.get(req.id) !== req) return; // cancelled, or the connection is gone
      const fields = { user: login, service: req.params.service, mech: req.mechName, rip: req.params.rip };
      switch (outcome.result) {
        case 'ok':
          logger.debug('login ok', { ...fields, user: outcome.fields.user });
          forget(req);
          send({ kind: 'ok', id: req.id, user: outcome.fields.user });
          maybeEnd();
          return;
        case 'temp':
          logger.warn('login: temporary failure', { ...fields, reason: outcome.why });
          forget(req);
          send({ kind: 'fail', id: req.id, user: login, code: 'temp_fail', reason: 'Temporary authentication failure' });
          maybeEnd();
          return;
        default: {
          // Unknown user, wrong password, disabled mailbox and a refused login look alike outside.
          const why = outcome.result === 'fail' ? outcome.why : outcome.result;
          logger.info('login failed', { ...fields, reason: why });
          // The bearer mechanisms first send their error status and wait for the client's dummy reply.
          if (req.mech.refused !== undefined) return step(req, req.mech.refused());
          failLater(req, { kind: 'fail', id: req.id, user: login });
        }
      }
    };

    const step = (req: Request, s: MechStep) => {
      switch (s.kind) {
        case 'continue':
          req.state = 'waiting';
          if (req.timer) clearTimeout(req.timer);
          req.timer = setTimeout(() => forget(req), STALE_REQUEST_MS);
          req.timer.unref();
          send({ kind: 'cont', id: req.id, data: s.challenge });
          return;
        case 'fail':
          logger.info('login failed', { user: s.login, service: req.params.service, mech: req.mechName, rip: req.params.rip, reason: s.reason });
          failLater(req, { kind: 'fail', id: req.id, ...(s.login !== undefined ? { user: s.login } : {}), reason: s.reason });
          return;
        case 'credentials':
          if (req.timer) clearTimeout(req.timer);
          check(req, s.login, s.password, s.bearer === true);
      }
    };

    const handleLine = (line: string) => {
      const msg = parseClientLine(line, clientMinor ?? 0);
      if (msg.kind === 'invalid') return drop(msg.fault, msg.reason);
      if (clientMinor === undefined) {
        if (msg.kind !== 'version') return drop('out_of_order', `${msg.kind.toUpperCase()} before VERSION`);
        if (msg.major !== 1) return drop('incompatible_version', 'incompatible protocol version');
        clientMinor = msg.minor;
        return;
      }
      switch (msg.kind) {
        case 'version':
        case 'cpid':
          return; // the pid is only for Dovecot's own login processes
        case 'auth': {
          if (requests.has(msg.id)) return drop('duplicate_id', 'duplicate request id');
          if (requests.size >= MAX_REQUESTS_PER_CONNECTION) return drop('too_many_requests', 'too many requests');
          const make = offered[msg.mech];
          if (make === undefined) return drop('unsupported_mechanism', 'unsupported mechanism');
          const req: Request = { id: msg.id, mechName: msg.mech, mech: make(), params: msg.params, state: 'waiting' };
          requests.set(req.id, req);
          if (closing) {
            forget(req);
            send({ kind: 'fail', id: req.id, code: 'temp_fail', reason: 'Server is shutting down' });
            return;
          }
          let initial: Buffer | undefined;
          if (msg.params.resp !== undefined) {
            initial = decodeBase64(msg.params.resp);
            if (initial === undefined) {
              failLater(req, { kind: 'fail', id: req.id, code: 'invalid_base64', reason: 'Invalid base64 data in initial response' });
              return;
            }
          }
          return step(req, req.mech.start(initial));
        }
        case 'cont': {
          const req = requests.get(msg.id);
          if (req === undefined) {
            send({ kind: 'fail', id: msg.id, reason: 'Authentication request timed out' });
            return;
          }
          if (req.state !== 'waiting') return drop('out_of_order', 'CONT while the request is not waiting');
          if (msg.data === '*') {
            forget(req);
            send({ kind: 'fail', id: msg.id, reason: 'Authentication aborted by client' });
            return;
          }
          const data = decodeBase64(msg.data);
          if (data === undefined) {
            failLater(req, { kind: 'fail', id: req.id, code: 'invalid_base64', reason: 'Invalid base64 data in continued response' });
            return;
          }
          return step(req, req.mech.next(data));
        }
        case 'cancel': {
          const req = requests.get(msg.id);
          if (req) forget(req);
          maybeEnd();
          return;
        }
      }
    };

    socket.on('data', (chunk: Buffer) => {
      if (dead) return;
      lastActive = performance.now();
      const lines = splitter.push(chunk);
      if (lines === undefined) return drop('line_too_long', 'line too long');
      if (chunk[chunk.length - 1] === 0x0a) partialSince = undefined;
      else if (lines.length > 0 || partialSince === undefined) partialSince = lastActive;
      for (const line of lines) {
        if (dead) return;
        handleLine(line);
      }
    });
    socket.once('close', () => {
      dead = true;
      for (const r of requests.values()) if (r.timer) clearTimeout(r.timer);
      requests.clear();
    });

    const cookie = randomBytes(16).toString('hex');
    socket.write(serializeHandshake({ pid: process.pid, cuid: nextCuid++, cookie, mechanisms: Object.keys(offered) }));

    return {
      shutdown() {
        closing = true;
        // Held-back failures go out now rather than outlive the daemon.
        for (const r of [...requests.values()]) {
          if (r.state === 'delaying' && r.held !== undefined) {
            const line = r.held;
            forget(r);
            write(line);
          }
        }
        maybeEnd();
      },
      lastActive: () => lastActive,
      partialSince: () => partialSince,
      busy: () => {
        for (const r of requests.values()) if (r.state !== 'waiting') return true;
        return false;
      },
    };
  };
}
