// The daemon's side of `checkpassword_listen`: `mailmapd-checkpassword`, forked by Dovecot
// for every login, sends one request (wire.ts) and exits with what we answer. Password
// checks go to the authenticator; AUTHORIZED=1 lookups are answered from memory. No failure
// delay here: Dovecot applies its own auth_failure_delay to what the program reports.

import type { Socket } from 'node:net';
import type { AuthContext, AuthOutcome, Authenticator, LookupOutcome } from '../auth/types.js';
import type { UserdbFields } from '../directory/userdb.js';
import { errorMessage, type Logger } from '../log.js';
import { secondsSince, type Metrics, type Result } from '../metrics.js';
import { endConnection, type ConnectionControl, type ConnectionHandler } from '../net/listener.js';
import { createFrameReader, decodeRequest, encodeReply, type CheckpasswordReply, type CheckpasswordRequest, type WireFault } from './wire.js';

export interface CheckpasswordDeps {
  authenticator: Authenticator;
  logger: Logger;
  metrics: Metrics;
  /** Largest request frame accepted; user + password are at most 512 bytes from Dovecot. */
  maxRequestBytes: number;
}

const LISTENER = 'checkpassword';

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
async function answer(auth: Authenticator, req: CheckpasswordRequest, logger: Logger): Promise<[CheckpasswordReply, Result]> {
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
  let out: AuthOutcome;
  try {
    out = await auth.authenticate(req.user, req.password, ctx);
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
      logger.info('checkpassword login failed', { ...log, reason: out.result === 'fail' ? out.why : out.result });
      return [{ code: 'fail' }, 'fail'];
  }
}

export function createCheckpasswordHandler(deps: CheckpasswordDeps): ConnectionHandler {
  const { authenticator, logger, metrics } = deps;
  return (socket: Socket): ConnectionControl => {
    const reader = createFrameReader(deps.maxRequestBytes);
    // Requests on one connection are answered in order, one at a time.
    let queue: Promise<void> = Promise.resolve();
    let inFlight = 0;
    let closing = false;
    let dead = false;

    const drop = ({ fault, reason }: { fault: WireFault['fault'] | 'internal'; reason: string }) => {
      if (dead) return;
      dead = true;
      metrics.badInput.inc({ listener: LISTENER, reason: fault });
      logger.warn('checkpassword: closing connection', { reason });
      socket.destroy();
    };

    const handle = async (body: Buffer) => {
      const req = decodeRequest(body);
      if ('fault' in req) return drop(req);
      const started = process.hrtime.bigint();
      const [reply, result] = await answer(authenticator, req, logger);
      metrics.lookupDuration.observe(
        { protocol: 'checkpassword', map: req.mode === 'auth' ? 'passdb' : 'userdb', result },
        secondsSince(started),
      );
      if (!dead) socket.write(encodeReply(reply));
    };

    socket.on('data', (chunk: Buffer) => {
      if (dead) return;
      const frames = reader.push(chunk);
      if (!Array.isArray(frames)) return drop(frames);
      for (const body of frames) {
        inFlight++;
        queue = queue
          .then(() => handle(body))
          .catch((err: unknown) => {
            logger.error('checkpassword: request failed', { error: errorMessage(err) });
            drop({ fault: 'internal', reason: 'internal error' });
          })
          .finally(() => {
            inFlight--;
            if (closing && inFlight === 0 && !dead) endConnection(socket);
          });
      }
    });
    socket.once('close', () => {
      dead = true;
    });

    return {
      shutdown() {
        closing = true;
        if (inFlight === 0) endConnection(socket);
      },
    };
  };
}
