// The daemon's side of `checkpassword_listen`: `mailmapd-checkpassword`, forked by Dovecot
// for every login, sends one request (wire.ts) and exits with what we answer. Password
// checks go to the authenticator; AUTHORIZED=1 lookups are answered from memory. No failure
// delay here: Dovecot applies its own auth_failure_delay to what the program reports.

import type { Socket } from 'node:net';
import type { AuthContext, AuthOutcome, Authenticator, LookupOutcome } from '../auth/types.js';
import type { UserdbFields } from '../directory/userdb.js';
import { errorMessage, type Logger } from '../log.js';
import { limitRepeats } from '../log-limit.js';
import { performance } from 'node:perf_hooks';
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
/**
 * Requests one connection may have waiting or being answered before it is no longer read.
 * The program sends one request per connection; a client that pipelines thousands without
 * reading the answers is read again only once its queue is empty and its replies have
 * drained, so it holds at most the requests of one read (64 KiB) and their replies.
 */
const MAX_QUEUED_REQUESTS = 16;
/** Unsent reply bytes past which the connection is not read until they have drained. */
export const MAX_PENDING_OUTPUT_BYTES = 64 * 1024;

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
      logger.info('checkpassword login failed', { ...log, reason: out.result === 'fail' ? out.why : out.result });
      return [{ code: 'fail' }, 'fail'];
  }
}

// Long because it is the per-connection state machine as one closure (the frame buffer,
// the reply queue, the shutdown flag); each step inside is a short function.
export function createCheckpasswordHandler(deps: CheckpasswordDeps): ConnectionHandler {
  const { authenticator, logger, metrics } = deps;
  const log = limitRepeats(logger);
  return (socket: Socket): ConnectionControl => {
    const reader = createFrameReader(deps.maxRequestBytes);
    // Requests on one connection are answered in order, one at a time.
    let queue: Promise<void> = Promise.resolve();
    let inFlight = 0;
    let closing = false;
    let dead = false;
    let lastActive = performance.now();
    let partialSince: number | undefined;
    let paused = false;
    let waitingDrain = false;

    // Reading resumes when both the queue and the unsent replies are back under their bounds.
    const pauseIfFull = () => {
      if (paused || dead) return;
      if (inFlight < MAX_QUEUED_REQUESTS && socket.writableLength <= MAX_PENDING_OUTPUT_BYTES) return;
      paused = true;
      socket.pause();
    };
    const resumeIfDrained = () => {
      if (!paused || dead || inFlight > 0) return;
      if (socket.writableLength > MAX_PENDING_OUTPUT_BYTES) {
        if (!waitingDrain) {
          waitingDrain = true;
          socket.once('drain', () => {
            waitingDrain = false;
            resumeIfDrained();
          });
        }
        return;
      }
      paused = false;
      socket.resume();
    };

    const drop = ({ fault, reason }: { fault: WireFault['fault'] | 'internal'; reason: string }) => {
      if (dead) return;
      dead = true;
      metrics.badInput.inc({ listener: LISTENER, reason: fault });
      log.warn('checkpassword: closing connection', { reason });
      socket.destroy();
    };

    const handle = async (body: Buffer) => {
      const req = decodeRequest(body);
      if ('fault' in req) return drop(req);
      const started = process.hrtime.bigint();
      const [reply, result] = await answer(authenticator, req, logger);
      metrics.lookupDuration.observe({ protocol: 'checkpassword', map: req.mode === 'auth' ? 'passdb' : 'userdb', result }, secondsSince(started));
      if (!dead) socket.write(encodeReply(reply));
    };

    socket.on('data', (chunk: Buffer) => {
      if (dead) return;
      lastActive = performance.now();
      const frames = reader.push(chunk);
      if (!Array.isArray(frames)) return drop(frames);
      if (reader.pending === 0) partialSince = undefined;
      else if (frames.length > 0 || partialSince === undefined) partialSince = lastActive;
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
            else {
              pauseIfFull();
              resumeIfDrained();
            }
          });
      }
      pauseIfFull();
    });
    socket.once('close', () => {
      dead = true;
    });

    return {
      shutdown() {
        closing = true;
        if (inFlight === 0) endConnection(socket);
      },
      lastActive: () => lastActive,
      partialSince: () => partialSince,
      busy: () => inFlight > 0,
    };
  };
}
