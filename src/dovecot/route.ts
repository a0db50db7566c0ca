// The HTTP lookup endpoint behind config/dovecot/auth-mailmapd.lua: Dovecot's Lua passdb
// and userdb ask here instead of forking a checkpassword program per login.
//
//   POST /dovecot/passdb   user, password, service, rip, lip, secured → verify a password
//                          [master]: a master login — the password is that master user's
//   POST /dovecot/userdb   user [service]                             → userdb fields
//   GET  /dovecot/users                                               → one login per line
//
// Requests and answers are application/x-www-form-urlencoded, because plain Lua has no
// JSON but decodes `a=b&c=d` with two gsub calls. An answer always carries `result=`:
// ok | unknown | mismatch | disabled (passdb) · ok | unknown | disabled (userdb) — with
// HTTP 200 — or `result=temp` with HTTP 503 when the answer is not known.
//
// The daemon verifies the password itself instead of handing Dovecot the hash: the
// verified-credential cache and the brute-force limiter then apply to Lua logins exactly
// as to the other doors, an old password stops at once after a change, and no hash ever
// crosses the socket. The price: only plaintext SASL mechanisms (PLAIN, LOGIN) work
// through this passdb — the same as checkpassword.

import type { AuthContext, AuthOutcome, Authenticator, LookupOutcome } from '../auth/types.js';
import type { Config } from '../config.js';
import type { Directory } from '../directory/directory.js';
import type { UserdbFields } from '../directory/userdb.js';
import type { HttpRequest, HttpResponse, Route } from '../http/server.js';
import type { Logger } from '../log.js';
import { secondsSince, type Metrics } from '../metrics.js';
import { hasBearerSecret } from '../http/bearer.js';

export interface DovecotRouteDeps {
  authenticator: Authenticator;
  directory: Directory;
  config: Config;
  logger: Logger;
  metrics: Metrics;
}

const formType = 'application/x-www-form-urlencoded';
/** Logins longer than this are nobody's; answering "unknown" avoids work on garbage. */
const maxLoginLength = 512;

function form(status: number, fields: Record<string, string | number | undefined>): HttpResponse {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(fields)) if (v !== undefined) p.append(k, String(v));
  return { status, body: p.toString(), contentType: formType };
}

function userdbAnswer(fields: UserdbFields): Record<string, string | number | undefined> {
  return { result: 'ok', user: fields.user, home: fields.home, uid: fields.uid, gid: fields.gid, quota_rule: fields.quotaRule };
}

/** A control character can never be part of a login; such a key is simply unknown. */
const badLogin = (login: string) => login === '' || login.length > maxLoginLength || /[\u0000-\u001f\u007f]/.test(login);

// Long because it defines the three routes (passdb, userdb, iterate) over one shared
// guard; each route is a short function inside.
export function createDovecotRoutes(deps: DovecotRouteDeps): Map<string, Route> {
  const { authenticator, directory, config, logger, metrics } = deps;
  const secret = config.http_secret;

  // Wraps a handler with the shared-secret check and the latency metric.
  const guarded =
    (map: 'passdb' | 'userdb' | 'iterate', handle: (req: HttpRequest) => Promise<HttpResponse> | HttpResponse, resultOf: (r: HttpResponse) => string): Route =>
    async (req) => {
      const start = process.hrtime.bigint();
      if (!hasBearerSecret(req, secret)) {
        metrics.badInput.inc({ listener: 'http', reason: 'bad_secret' });
        logger.warn('dovecot lookup refused: missing or wrong shared secret', { path: req.path });
        return form(401, { result: 'temp', reason: 'unauthorized' });
      }
      const out = await handle(req);
      metrics.lookupDuration.observe({ protocol: 'dovecot', map, result: resultOf(out) }, secondsSince(start));
      return out;
    };

  const resultLabel = (r: HttpResponse): string => {
    const result = new URLSearchParams(String(r.body)).get('result');
    if (r.status !== 200 || result === 'temp') return 'temp';
    if (result === 'ok') return 'ok';
    if (result === 'unknown') return 'notfound';
    return 'fail';
  };

  const passdb = async (req: HttpRequest): Promise<HttpResponse> => {
    const q = new URLSearchParams(req.body.toString('utf8'));
    const login = q.get('user') ?? '';
    const password = q.get('password');
    if (password === null) return form(400, { result: 'temp', reason: 'password missing' });
    if (badLogin(login)) return form(200, { result: 'unknown' });
    const master = q.get('master') ?? '';
    if (master !== '' && badLogin(master)) return form(200, { result: 'unknown' });
    const ctx: AuthContext = {
      ...(master !== '' ? { master } : {}),
      service: q.get('service') || 'dovecot',
      ...(q.get('rip') ? { remoteIp: q.get('rip')! } : {}),
      ...(q.get('lip') ? { localIp: q.get('lip')! } : {}),
      secured: (q.get('secured') ?? '') !== '',
    };
    const out: AuthOutcome = await authenticator.authenticate(login, password, ctx);
    logger.debug('dovecot passdb', { user: login, master: ctx.master, service: ctx.service, rip: ctx.remoteIp, result: out.result });
    switch (out.result) {
      case 'ok':
        return form(200, userdbAnswer(out.fields));
      case 'fail':
        // Said only after the password was verified: the service is not for this mailbox.
        if (out.why === 'service_disabled') return form(200, { result: 'disabled', reason: 'service disabled' });
        // Unknown is told apart so that Dovecot can try a next passdb and log it right;
        // a mailbox without a usable hash is a mismatch, like a wrong password.
        return form(200, { result: out.why === 'unknown' ? 'unknown' : 'mismatch' });
      case 'disabled':
        return form(200, { result: 'disabled', user: out.address });
      case 'refused':
        // Looks like a wrong password from outside; the reason is for Dovecot's own log.
        return form(200, { result: 'mismatch', reason: 'refused', retry_after: out.retryAfterSeconds });
      case 'temp':
        return form(503, { result: 'temp', reason: out.why });
    }
  };

  const userdb = (req: HttpRequest): HttpResponse => {
    const q = new URLSearchParams(req.body.toString('utf8'));
    const login = q.get('user') ?? '';
    if (badLogin(login)) return form(200, { result: 'unknown' });
    const out: LookupOutcome = authenticator.lookup(login, q.get('service') ?? undefined);
    logger.debug('dovecot userdb', { user: login, result: out.result });
    switch (out.result) {
      case 'ok':
        return form(200, userdbAnswer(out.fields));
      case 'unknown':
        return form(200, { result: 'unknown' });
      case 'disabled':
        return form(200, { result: 'disabled', user: out.address });
      case 'temp':
        return form(503, { result: 'temp', reason: out.why });
    }
  };

  // Active mailboxes only: a disabled one answers "unknown" to a userdb lookup, so listing
  // it would only make `doveadm -A` fail on it. The list names every account, so it is
  // never given without the shared secret; it is streamed in pieces of about 64 KB, so
  // that a slow or stalled reader holds one piece, not the whole list.
  const users = (): HttpResponse => {
    if (secret === '') {
      metrics.badInput.inc({ listener: 'http', reason: 'unauthorized' });
      return { status: 403, body: 'the user list needs http_secret to be set\n' };
    }
    if (!directory.loaded) return { status: 503, body: 'directory not loaded yet\n' };
    function* pieces(): Generator<string> {
      let piece = '';
      for (const address of directory.users()) {
        if (badLogin(address)) continue;
        if (directory.user(address).status !== 'ok') continue;
        piece += address + '\n';
        if (piece.length >= 65_536) {
          yield piece;
          piece = '';
        }
      }
      if (piece !== '') yield piece;
    }
    return { status: 200, body: pieces(), contentType: 'text/plain; charset=utf-8' };
  };

  return new Map<string, Route>([
    ['POST /dovecot/passdb', guarded('passdb', passdb, resultLabel)],
    ['POST /dovecot/userdb', guarded('userdb', userdb, resultLabel)],
    ['GET /dovecot/users', guarded('iterate', users, (r) => (r.status === 200 ? 'ok' : 'temp'))],
  ]);
}
