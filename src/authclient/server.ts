// The Dovecot auth-client protocol on `auth_listen`, for Postfix's `smtpd_sasl_type =
// dovecot` and `doveadm auth test -a`, on the connection layer (net/connection.ts). One
// state machine per connection: greeting → `awaiting-version` (the client's VERSION) →
// `ready`: any number of concurrent AUTH requests, each driven by its mechanism
// (mechanisms.ts) until the authenticator answers. Bad input closes the connection (never
// an OK); failed logins are answered after a delay, with a timer, so other requests on this
// and other connections go on meanwhile.

import { randomBytes } from 'node:crypto';
import type { AuthContext, AuthOutcome, Authenticator } from '../auth/types.js';
import { limitFailedLogins, type FailedLoginLog } from '../log-limit.js';
import { errorMessage, type Logger } from '../log.js';
import { secondsSince, type Metrics, type Result } from '../metrics.js';
import { doorHandler, type Conn, type Protocol } from '../net/connection.js';
import { systemClock, type Clock } from '../net/clock.js';
import type { ConnectionHandler } from '../net/listener.js';
import { createLineDecoder } from '../net/tab-line.js';
import {
  decodeBase64,
  parseClientLine,
  serializeHandshake,
  serializeReply,
  type AuthClientFault,
  type AuthParams,
  type ClientMessage,
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
  /** The failure delay's and the CONT wait's timers (tests inject one); default the system's. */
  clock?: Clock;
}

/** Requests one connection may have open at once; Postfix and doveadm use one at a time. */
const MAX_REQUESTS_PER_CONNECTION = 128;
/** A request waiting for the client's CONT is forgotten after this (Dovecot: 150 s). */
const STALE_REQUEST_MS = 150_000;
const LISTENER = 'auth';
interface Request {
  id: number;
  mechName: string;
  mech: Mechanism;
  params: AuthParams;
  /** waiting: for the client's CONT; checking: the authenticator is busy; delaying: a FAIL is on its timer. */
  state: 'waiting' | 'checking' | 'delaying';
  timer?: unknown;
  /** The FAIL line held back by the failure delay. */
  held?: string;
}

/**
 * Where a connection stands. Nothing but VERSION is accepted before it; the client's minor
 * version decides how an empty `resp=` reads.
 */
type Phase = { name: 'awaiting-version' } | { name: 'ready'; clientMinor: number };

let nextCuid = 1;

function resultLabel(o: AuthOutcome): Result {
  return o.result === 'ok' ? 'ok' : o.result === 'temp' ? 'temp' : 'fail';
}

export function createAuthClientHandler(deps: AuthClientDeps): ConnectionHandler {
  const offered = deps.bearer ? { ...mechanisms, ...bearerMechanisms } : mechanisms;
  // One for the listener: a flood is bounded per address across connections.
  const failed = limitFailedLogins(deps.logger);
  return doorHandler<string>({ name: LISTENER, logger: deps.logger, metrics: deps.metrics, open: (conn) => openAuthClient(conn, deps, offered, failed) });
}

// Long because it is the per-connection state machine as one closure (the phase, the
// requests); each step inside is a short function.
function openAuthClient(conn: Conn, deps: AuthClientDeps, offered: Record<string, () => Mechanism>, failed: FailedLoginLog): Protocol<string> {
  const { authenticator, logger, metrics } = deps;
  const requests = new Map<number, Request>();
  let phase: Phase = { name: 'awaiting-version' };

  const send = (reply: ServerReply) => conn.send(serializeReply(reply));
  const drop = (fault: AuthClientFault, reason: string) => conn.refuse(fault, reason);

  const clock = deps.clock ?? systemClock;
  const stopTimer = (req: Request) => {
    if (req.timer !== undefined) clock.clearTimeout(req.timer);
    req.timer = undefined;
  };
  const forget = (req: Request) => {
    stopTimer(req);
    requests.delete(req.id);
  };

  /** A FAIL after the failure delay (or at once with no-penalty), without blocking anything. */
  const failLater = (req: Request, reply: ServerReply) => {
    const line = serializeReply(reply);
    if (req.params.noPenalty || deps.failureDelayMs <= 0 || conn.closing) {
      forget(req);
      conn.send(line);
      conn.settled();
      return;
    }
    req.state = 'delaying';
    req.held = line;
    // Unref'd (the system clock's): shutdown() sends a held-back FAIL at once anyway.
    req.timer = clock.setTimeout(() => {
      forget(req);
      conn.send(line);
      conn.settled();
    }, deps.failureDelayMs);
    conn.settled();
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
        conn.settled();
        return;
      case 'temp':
        logger.warn('login: temporary failure', { ...fields, reason: outcome.why });
        forget(req);
        send({ kind: 'fail', id: req.id, user: login, code: 'temp_fail', reason: 'Temporary authentication failure' });
        conn.settled();
        return;
      default: {
        // Unknown user, wrong password, disabled mailbox and a refused login look alike outside.
        const why = outcome.result === 'fail' ? outcome.why : outcome.result;
        failed('login failed', { ...fields, reason: why });
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
        stopTimer(req);
        req.timer = clock.setTimeout(() => forget(req), STALE_REQUEST_MS);
        send({ kind: 'cont', id: req.id, data: s.challenge });
        return;
      case 'fail':
        failed('login failed', { user: s.login, service: req.params.service, mech: req.mechName, rip: req.params.rip, reason: s.reason });
        failLater(req, { kind: 'fail', id: req.id, ...(s.login !== undefined ? { user: s.login } : {}), reason: s.reason });
        return;
      case 'credentials':
        stopTimer(req);
        check(req, s.login, s.password, s.bearer === true);
    }
  };

  const auth = (msg: Extract<ClientMessage, { kind: 'auth' }>) => {
    if (requests.has(msg.id)) return drop('duplicate_id', 'duplicate request id');
    if (requests.size >= MAX_REQUESTS_PER_CONNECTION) return drop('too_many_requests', 'too many requests');
    const make = offered[msg.mech];
    if (make === undefined) return drop('unsupported_mechanism', 'unsupported mechanism');
    const req: Request = { id: msg.id, mechName: msg.mech, mech: make(), params: msg.params, state: 'waiting' };
    requests.set(req.id, req);
    if (conn.closing) {
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
    step(req, req.mech.start(initial));
  };

  const cont = (msg: Extract<ClientMessage, { kind: 'cont' }>) => {
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
    step(req, req.mech.next(data));
  };

  const handle = (line: string) => {
    const msg = parseClientLine(line, phase.name === 'ready' ? phase.clientMinor : 0);
    if (msg.kind === 'invalid') return drop(msg.fault, msg.reason);
    if (phase.name === 'awaiting-version') {
      if (msg.kind !== 'version') return drop('out_of_order', `${msg.kind.toUpperCase()} before VERSION`);
      if (msg.major !== 1) return drop('incompatible_version', 'incompatible protocol version');
      phase = { name: 'ready', clientMinor: msg.minor };
      return;
    }
    switch (msg.kind) {
      case 'version':
      case 'cpid':
        return; // the pid is only for Dovecot's own login processes
      case 'auth':
        return auth(msg);
      case 'cont':
        return cont(msg);
      case 'cancel': {
        const req = requests.get(msg.id);
        if (req) forget(req);
        conn.settled();
        return;
      }
    }
  };

  const cookie = randomBytes(16).toString('hex');
  conn.send(serializeHandshake({ pid: process.pid, cuid: nextCuid++, cookie, mechanisms: Object.keys(offered) }));

  return {
    decoder: createLineDecoder(deps.maxRequestBytes),
    handle,
    busy() {
      for (const r of requests.values()) if (r.state !== 'waiting') return true;
      return false;
    },
    shutdown() {
      // Held-back failures go out now rather than outlive the daemon.
      for (const r of [...requests.values()]) {
        if (r.state === 'delaying' && r.held !== undefined) {
          const line = r.held;
          forget(r);
          conn.send(line);
        }
      }
    },
    closed() {
      for (const r of requests.values()) stopTimer(r);
      requests.clear();
    },
  };
}
