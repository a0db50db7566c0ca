// The daemon's side of `checkpassword_listen`, on the connection layer (net/connection.ts):
// `mailmapd-checkpassword`, forked by Dovecot for every login, sends one request (wire.ts)
// and exits with what we answer. Password checks go to the authenticator; AUTHORIZED=1
// lookups are answered from memory. No failure delay here: Dovecot applies its own
// auth_failure_delay to what the program reports. Requests on one connection are answered
// in order, one at a time: a connection is `idle`, or `answering` with a queue behind.

import type { AuthContext, AuthOutcome, Authenticator, LookupOutcome } from '../auth/types.js';
import type { UserdbFields } from '../directory/userdb.js';
import { limitFailedLogins, type FailedLoginLog } from '../log-limit.js';
import { errorMessage, type Logger } from '../log.js';
import { secondsSince, type Metrics, type Result } from '../metrics.js';
import { doorHandler, type Conn, type Protocol } from '../net/connection.js';
import type { ConnectionHandler } from '../net/listener.js';
import { createRequestDecoder, encodeReply, type CheckpasswordReply, type CheckpasswordRequest } from './wire.js';

export interface CheckpasswordDeps {
  authenticator: Authenticator;
  logger: Logger;
  metrics: Metrics;
  /** Largest request frame accepted; user + password are at most 512 bytes from Dovecot. */
  maxRequestBytes: number;
}

const LISTENER = 'checkpassword';
/**
 * Requests one connection may have waiting or being answered before it is no longer read.
 * The program sends one request per connection; a client that pipelines thousands without
 * reading the answers holds at most the requests of one read (64 KiB) and their replies.
 */
const MAX_QUEUED_REQUESTS = 16;

function okReply(f: UserdbFields): CheckpasswordReply {
  const fields: [string, string][] = [
    ['user', f.user],
    ['home', f.home],
    ['uid', String(f.uid)],
    ['gid', String(f.gid)],
  ];
  if (f.quotaRule !== undefined) fields.push(['quota_rule', f.quotaRule]);
  return { code: 'ok', fields };
}

/** The answer to one request, with the metric's result label. */
async function answer(auth: Authenticator, req: CheckpasswordRequest, logger: Logger, failed: FailedLoginLog): Promise<[CheckpasswordReply, Result]> {
  const log = { user: req.user, service: req.service, rip: req.remoteIp || undefined };
  if (req.mode === 'lookup') {
    const out: LookupOutcome = auth.lookup(req.user);
    switch (out.result) {
      case 'ok':
        return [okReply(out.fields), 'ok'];
      case 'temp':
        logger.warn('checkpassword lookup: temporary failure', { ...log, reason: out.why });
        return [{ code: 'temp', reason: out.why }, 'temp'];
      default:
        // A disabled mailbox is no user to Dovecot's userdb either.
        return [{ code: 'fail' }, 'notfound'];
    }
  }
  const ctx: AuthContext = { service: req.service || 'unknown', secured: req.secured };
  if (req.remoteIp !== '') ctx.remoteIp = req.remoteIp;
  if (req.localIp !== '') ctx.localIp = req.localIp;
  // Dovecot's master passdb asks with the master user as user and the mailbox as login_user.
  const loginUser = req.loginUser ?? '';
  const master = loginUser !== '' && loginUser !== req.user;
  if (master) ctx.master = req.user;
  let out: AuthOutcome;
  try {
    out = await auth.authenticate(master ? loginUser : req.user, req.password, ctx);
    // The master passdb must not rename its user: Dovecot itself switches to login_user.
    if (master && out.result === 'ok') out = { result: 'ok', fields: { ...out.fields, user: req.user } };
  } catch (err) {
    out = { result: 'temp', why: errorMessage(err) };
  }
  switch (out.result) {
    case 'ok':
      logger.debug('checkpassword login ok', { ...log, user: out.fields.user });
      return [okReply(out.fields), 'ok'];
    case 'temp':
      logger.warn('checkpassword login: temporary failure', { ...log, reason: out.why });
      return [{ code: 'temp', reason: out.why }, 'temp'];
    default:
      failed('checkpassword login failed', { ...log, reason: out.result === 'fail' ? out.why : out.result });
      return [{ code: 'fail' }, 'fail'];
  }
}

export function createCheckpasswordHandler(deps: CheckpasswordDeps): ConnectionHandler {
  const failed = limitFailedLogins(deps.logger);
  return doorHandler<CheckpasswordRequest>({
    name: LISTENER,
    logger: deps.logger,
    metrics: deps.metrics,
    open: (conn) => openCheckpassword(conn, deps, failed),
  });
}

function openCheckpassword(conn: Conn, deps: CheckpasswordDeps, failed: FailedLoginLog): Protocol<CheckpasswordRequest> {
  const { authenticator, logger, metrics } = deps;
  const queue: CheckpasswordRequest[] = [];
  /** idle: nothing to answer; answering: the head of `queue` is with the authenticator. */
  let phase: 'idle' | 'answering' = 'idle';

  const next = () => {
    const req = queue[0];
    if (req === undefined) {
      phase = 'idle';
      conn.settled();
      return;
    }
    phase = 'answering';
    const started = process.hrtime.bigint();
    answer(authenticator, req, logger, failed).then(
      ([reply, result]) => {
        metrics.lookupDuration.observe({ protocol: 'checkpassword', map: req.mode === 'auth' ? 'passdb' : 'userdb', result }, secondsSince(started));
        conn.send(encodeReply(reply));
        queue.shift();
        next();
      },
      (err: unknown) => {
        logger.error('checkpassword: request failed', { error: errorMessage(err) });
        conn.refuse('internal', 'internal error');
      },
    );
  };

  return {
    decoder: createRequestDecoder(deps.maxRequestBytes),
    handle(req) {
      queue.push(req);
      if (phase === 'idle') next();
    },
    busy: () => phase === 'answering',
    full: () => queue.length >= MAX_QUEUED_REQUESTS,
    closed() {
      queue.length = 0;
    },
  };
}
